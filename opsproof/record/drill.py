"""The drill record: one shape for the restore drill and every DR drill, whatever it restored.

Steps are timed as they run (opsproof.drills.runner); verifications are measurements, judged as a check judges;
RTO and RPO carry their target and what was achieved; cleanup and who confirmed the drill are stated.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsproof.record.measurement import Measurement

DrillOutcome = Literal["passed", "failed", "interrupted"]
OUTPUT_TAIL_CHARS = 2000  # what a failed command printed last, kept with its step


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def tail(output: str | None) -> str | None:
    """The last lines of a command's output, at most ``OUTPUT_TAIL_CHARS`` (redacted with the record)."""
    text = (output or "").strip()
    return text[-OUTPUT_TAIL_CHARS:] or None


class Step(BaseModel):
    """One timed step of a drill (or of its rollback): what it did, or why it failed."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str | None = None  # a DR step's type: run, promote, restore, wait_healthy, sandbox
    target: str | None = None  # what it acted on: host.db, postgres.standby ("local" for this machine)
    timeout_s: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    outcome: DrillOutcome = "passed"
    detail: str | None = None
    error: str | None = None
    output_tail: str | None = None
    exit_code: int | None = None  # a command's


class DrillRecord(BaseModel):
    """A restore drill (``backup_set``) or a DR drill (``scenario``): results.json ``drill``, the readiness report's."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["restore", "dr"]
    scenario: str | None = None  # a DR drill's scenario
    backup_set: str | None = None  # the backup set a restore drill restored (a DR drill: where its backup lies)
    backup_id: str | None = None
    backup_time: str | None = None
    target: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    rto_target_s: float | None = None
    rto_achieved_s: float | None = None
    rpo_target_s: float | None = None
    rpo_achieved_s: float | None = None
    verifications: list[Measurement] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    rollback: list[Step] = Field(default_factory=list)  # a DR drill's rollback steps, run after it whatever happened
    failed_step: str | None = None
    error: str | None = None
    cleanup_confirmed: bool = False
    previous_leftovers: list[str] = Field(default_factory=list)  # what a killed drill had left, and what became of it
    cleanup_left: list[str] = Field(default_factory=list)  # what this drill could not remove or undo
    outcome: DrillOutcome = "failed"
    confirmed_by: str | None = None  # who allowed the destructive run, and with what
    systems: list[str] = Field(default_factory=list)  # what was drilled: a DR scenario's acts_on, a backup set's source
    game_day: bool = False  # a DR drill on a production tier, on its declared game day
    approver: str | None = None  # who approved that game day
    overhead_s: float | None = None  # the drill's own time beyond its steps' (and rollback's) durations
    outage_started_at: str | None = None  # DR: when the declared outage began
    newest_data_before: str | None = None  # DR: the newest row before the outage and after recovery (RPO)
    newest_data_after: str | None = None

    @property
    def subject(self) -> str:
        """What was drilled: ``backup set nightly`` or ``scenario outage``."""
        name = self.scenario if self.kind == "dr" else self.backup_set
        return f"{'scenario' if self.kind == 'dr' else 'backup set'} {name or '(not recorded)'}"

    def lines(self) -> list[str]:
        """The drill in a few lines, as the HTML report shows it beside the check's evidence."""
        def seconds(value) -> str:
            return "n/a" if value is None else f"{value:g} s"

        def line(label: str, step: Step) -> str:
            acted = f" ({step.kind} on {step.target})" if step.kind and step.target else ""
            said = f": {step.error or step.detail}" if step.error or step.detail else ""
            return f"{label} {step.name}{acted}: {step.outcome} in {seconds(step.duration_s)}{said}"

        confirmed = f"; confirmed by {self.confirmed_by}" if self.confirmed_by else ""
        return [f"{self.subject}: {self.outcome}; RTO {seconds(self.rto_achieved_s)} of {seconds(self.rto_target_s)}; "
                f"RPO {seconds(self.rpo_achieved_s)} of {seconds(self.rpo_target_s)}{confirmed}",
                *(line("step", s) for s in self.steps), *(line("rollback", s) for s in self.rollback),
                *(f"left: {left}" for left in self.cleanup_left)]

    def to_dict(self) -> dict:
        data = self.model_dump()
        data["verifications"] = [m.to_dict() for m in self.verifications]
        return data

    @classmethod
    def read(cls, data: dict, schema_version: int) -> DrillRecord:
        """A record from a results.json; those written before schema version 2 are brought to this shape."""
        return cls.model_validate(data if schema_version >= 2 else _upgraded(data))


def _upgraded(data: dict) -> dict:
    """Schema version 1: restore verifications named their measure ``name``; DR verifications and steps said
    ``ok`` (a DR verification's ``detail`` was its error when it failed). Anything else is left for validation."""
    steps = [{**{k: x for k, x in s.items() if k != "ok"}, "outcome": "passed" if s["ok"] else "failed"}
             if isinstance(s, dict) and "ok" in s else s for s in data.get("steps", [])]
    return {**data, "verifications": [_verification(v) for v in data.get("verifications", [])], "steps": steps}


def _verification(old):
    if not isinstance(old, dict) or "name" not in old:
        return old
    if "ok" in old:
        context = {"detail": old.get("detail")} if old["ok"] and old.get("detail") else {}
        return Measurement.compared(old["name"], "ok" if old["ok"] else old.get("detail"), "==", "ok",
                                    **context).to_dict()
    return {"measure": old["name"], **{k: x for k, x in old.items() if k != "name"}}
