"""One measured value, judged against a limit or a threshold, or only recorded: the unit of evidence.

>>> Measurement.compared("status_code", 500, "==", 200).line("http.api")
'status_code (500) == 200 on http.api'
>>> Measurement.judged("p95_latency_ms", 700.0, Ceiling(warn=500, crit=2000)).describe()  # opsproof.thresholds
'p95_latency_ms (700.0) <= warn 500 / crit 2000 [warn]'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from opsproof.thresholds import Comparison, Verdict, show_limit, show_value


class Measurement(BaseModel):
    """``measure (value)``; compared: ``op`` and ``limit``; judged: ``op``, ``warn`` and ``crit``; both: ``verdict``.

    Extra keys are context (``component``, ``detail``). A measurement keeps only the keys it was given,
    so a recorded value stays ``{measure, value}`` and a limit of None (``tls_chain_error == None``) stays.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    measure: str
    value: Any = None
    op: str | None = None
    limit: Any = None
    warn: float | None = None
    crit: float | None = None
    verdict: Literal["ok", "warn", "crit"] | None = None

    @classmethod
    def recorded(cls, measure: str, value, **context) -> Measurement:
        return cls(measure=measure, value=plain(value), **plain(context))

    @classmethod
    def compared(cls, measure: str, value, op: str, limit, **context) -> Measurement:
        holds = Comparison(measure, value, op, limit, "").holds
        return cls(measure=measure, value=plain(value), op=op, limit=plain(limit),
                   verdict=Verdict.OK.value if holds else Verdict.CRIT.value, **plain(context))

    @classmethod
    def judged(cls, measure: str, value, threshold) -> Measurement:
        return cls(measure=measure, value=plain(value), op=threshold.ok_op, warn=threshold.warn, crit=threshold.crit,
                   verdict=threshold.judge(value).value)

    @property
    def ok(self) -> bool:
        return self.verdict in (None, Verdict.OK.value)

    @property
    def context(self) -> dict:
        return dict(self.model_extra or {})

    @property
    def is_threshold(self) -> bool:
        return self.warn is not None or self.crit is not None

    def comparison(self) -> str:
        """``measure (value) op limit``: with a threshold, the limit the value crossed (crit, else warn)."""
        text = f"{self.measure} ({show_value(self.value)})"
        if self.op is None:
            return text
        if self.is_threshold:
            limit = self.crit if self.verdict == Verdict.CRIT.value or self.warn is None else self.warn
            return f"{text} {self.op} {show_limit(limit)}"
        return f"{text} {self.op} {show_limit(self.limit)}"

    def line(self, where: str, note: str | None = None) -> str:
        """The evidence line a failure shows: ``response_time_ms (2310.0) <= 2000 on http.api (crit)``."""
        text = f"{self.comparison()} on {where}"
        if self.is_threshold and not self.ok:
            text += f" ({self.verdict})"
        return f"{text}: {note}" if note else text

    def describe(self) -> str:
        """``response_time_ms (12.3) <= warn 500 / crit 2000``, ``[crit]`` when crossed, then any context."""
        text = f"{self.measure} ({show_value(self.value)})"
        if self.is_threshold:
            limits = [f"{k} {show_limit(getattr(self, k))}" for k in ("warn", "crit") if getattr(self, k) is not None]
            text += f" {self.op} {' / '.join(limits)}"
        elif self.op is not None:
            text += f" {self.op} {show_limit(self.limit)}"
        if not self.ok:
            text += f" [{self.verdict}]"
        return " ".join([text, *(f"{k}={show_value(v)}" for k, v in self.context.items())])

    def to_dict(self) -> dict:
        return self.model_dump(exclude_unset=True)


def described(measurements: list[Measurement], message: str) -> list[str]:
    """Each measurement described once: one whose evidence line the message already carries is left to it."""
    return [m.describe() for m in measurements if m.ok or m.comparison() not in message]


def plain(value):
    """Values travel to the controller and into JSON: keep numbers and text, describe the rest."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)
