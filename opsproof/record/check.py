"""A check's record: its phases merged into one outcome, its evidence, and the gate's decision.

A pytest phase (setup, call, teardown) of a check is a ``Phase``; it travels on the report as a plain
dict (``report.opsproof``), so xdist can carry it to the controller, where phases become a ``CheckRecord``.
``merge`` is the one rule for several outcomes of one check: its phases, and eventually's attempts.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from opsproof.outcomes import Outcome, worst
from opsproof.record.drill import DrillRecord
from opsproof.record.measurement import Measurement


def merge(outcomes: Iterable[tuple[str, str]]) -> tuple[Outcome, str]:
    """``(outcome, message)`` pairs -> one: skipped wins unless something failed or errored, else the worst;
    the message is the first one given with that outcome."""
    pairs = [(Outcome(outcome), message) for outcome, message in outcomes]
    found = {outcome for outcome, _ in pairs}
    if Outcome.SKIPPED in found and not {Outcome.FAILED, Outcome.ERROR} & found:
        final = Outcome.SKIPPED
    else:
        final = worst(found)
    return final, next((message for outcome, message in pairs if outcome is final and message), "")


class ShownWaiver(BaseModel):
    """A waiver as reports show it (``Waiver.shown()``): every field, dates as ``YYYY-MM-DD``."""

    model_config = ConfigDict(extra="forbid")

    check: str
    justification: str
    approver: str
    ticket: str
    created: str
    expires: str


class _Subject(BaseModel):
    """What a check is and where it runs; shared by its phases and its record."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    check: str
    module: str
    target: str | None = None
    kind: str | None = None
    where: str | None = None
    severity: str


class Phase(_Subject):
    """One phase's outcome and evidence, redacted (``report.opsproof``)."""

    phase: str
    outcome: Outcome
    message: str = ""
    measurements: list[Measurement] = Field(default_factory=list)
    drill: DrillRecord | None = None
    waiver: ShownWaiver | None = None  # set by the controller for the HTML row, which it sees after

    @classmethod
    def of(cls, report) -> Phase | None:
        """The phase a report carries, or None for a report opsproof did not make (a collection report).

        Several hooks ask for each report's phase, one after another as the report is logged: the last
        report's phase is kept (one, so the run's thousands of reports do not each keep a second copy),
        as long as its dict is the same one with the same keys (the collector adds the waiver to it)."""
        data = getattr(report, "opsproof", None)
        if data is None:
            return None
        kept_report, kept_data, kept_size, kept_phase = _LAST
        if kept_report is report and kept_data is data and kept_size == len(data):
            return kept_phase
        phase = cls.model_validate(data)
        _LAST[:] = [report, data, len(data), phase]
        return phase

    def to_dict(self) -> dict:
        return _dump(self)

    def keep(self, report, data: dict) -> None:
        """This phase is what ``data`` (its own ``to_dict()``, now on ``report``) says: ``of(report)`` need not
        validate it again."""
        _LAST[:] = [report, data, len(data), self]


_LAST: list = [None, None, 0, None]  # the report last asked about, its dict, the dict's size, its Phase


class CheckRecord(_Subject):
    """One check in results.json: the merged outcome, every measurement of every phase, and whether it gates."""

    id: str
    outcome: Outcome
    measurements: list[Measurement] = Field(default_factory=list)
    duration_s: float = 0.0
    message: str = ""
    gating: bool = False
    drill: DrillRecord | None = None
    waiver: ShownWaiver | None = None
    waiver_expired: ShownWaiver | None = None
    _phases: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    @classmethod
    def start(cls, nodeid: str, phase: Phase) -> CheckRecord:
        return cls(id=nodeid, outcome=phase.outcome, **phase.model_dump(include=set(_Subject.model_fields)))

    def add(self, phase: Phase, duration_s: float) -> None:
        """Fold in one phase: its time, its evidence, and the outcome and message of all phases so far."""
        self._phases.append((phase.outcome, phase.message))
        self.duration_s = round(self.duration_s + duration_s, 4)
        self.measurements.extend(phase.measurements)
        self.drill = phase.drill or self.drill
        outcome, self.message = merge(self._phases)
        self.outcome = outcome.value
        self.waiver = self.waiver_expired = None  # decided again on the merged outcome

    def to_dict(self) -> dict:
        data = _dump(self)
        return {"id": data.pop("id"), **data}


def _dump(model: Phase | CheckRecord) -> dict:
    """Plain JSON-ready values; optional parts (drill, waiver) only when present, as results.json always had."""
    data = model.model_dump()
    for key in ("drill", "waiver", "waiver_expired"):
        if key in data and data[key] is None:
            del data[key]
    data["measurements"] = [m.to_dict() for m in model.measurements]
    if model.drill is not None:
        data["drill"] = model.drill.to_dict()
    return data
