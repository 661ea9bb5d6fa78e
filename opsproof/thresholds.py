"""Warn/crit thresholds as data, and the one place a measured value is judged against them.

A ``Ceiling`` is for quantities where higher is worse (latency, usage); a ``Floor`` for those where
lower is worse (hit rate, days to certificate expiry). The direction belongs to the quantity, so a
threshold written in the wrong order is rejected when the environment file is read.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class Verdict(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    CRIT = "crit"


COMPARATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


class _Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # crit: .nan would pass anything
    warn: float | None = None
    crit: float | None = None
    ok_op: ClassVar[str] = "<="  # the comparison a healthy value satisfies

    @model_validator(mode="after")
    def _ordered(self):
        if self.warn is None and self.crit is None:
            raise ValueError("give warn, crit or both")
        if self.warn is not None and self.crit is not None:
            if not COMPARATORS[self.ok_op](self.warn, self.crit):
                worse = "above" if self.ok_op == "<=" else "below"
                raise ValueError(
                    f"warn ({_fmt(self.warn)}) must not be {worse} crit ({_fmt(self.crit)}): "
                    f"{'higher' if self.ok_op == '<=' else 'lower'} is worse"
                )
        return self

    def judge(self, value: float) -> Verdict:
        ok = COMPARATORS[self.ok_op]
        if self.crit is not None and not ok(value, self.crit):
            return Verdict.CRIT
        if self.warn is not None and not ok(value, self.warn):
            return Verdict.WARN
        return Verdict.OK

    def limit_for(self, verdict: Verdict) -> float:
        """The limit a value of this verdict crossed (crit for CRIT, warn for WARN)."""
        if verdict is Verdict.CRIT or self.warn is None:
            return self.crit  # type: ignore[return-value]
        return self.warn


class Ceiling(_Threshold):
    """Higher is worse: ``{warn: 500, crit: 2000}``; healthy values are ``<=`` the limit."""

    ok_op: ClassVar[str] = "<="


class Floor(_Threshold):
    """Lower is worse: ``{warn: 70, crit: 40}``; healthy values are ``>=`` the limit."""

    ok_op: ClassVar[str] = ">="


class PercentCeiling(Ceiling):
    @model_validator(mode="after")
    def _in_range(self):
        _check_pct(self)
        return self


class PercentFloor(Floor):
    @model_validator(mode="after")
    def _in_range(self):
        _check_pct(self)
        return self


def _check_pct(threshold: _Threshold) -> None:
    for name in ("warn", "crit"):
        value = getattr(threshold, name)
        if value is not None and not 0 <= value <= 100:
            raise ValueError(f"{name} ({_fmt(value)}) is a percentage and must be within 0..100")


def _fmt(value) -> str:
    """A limit as people write it: 95, 0.5, 2000."""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Comparison:
    """One measured value against one limit: the unit of evidence."""

    measure: str
    value: object
    op: str
    limit: object
    where: str

    @property
    def holds(self) -> bool:
        try:
            return bool(COMPARATORS[self.op](self.value, self.limit))
        except TypeError:
            return False

    def __str__(self) -> str:
        return f"{self.measure} ({show_value(self.value)}) {self.op} {show_limit(self.limit)} on {self.where}"


def show_value(value) -> str:
    """A measured value: one decimal for floats (97.0), three significant digits below 1."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def show_limit(value) -> str:
    if isinstance(value, (str, bool)):
        return show_value(value)
    return _fmt(value)
