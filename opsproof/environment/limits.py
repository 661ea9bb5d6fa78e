"""The one shape of a limit on a number, wherever a file writes one: invariants of databases, restored
backups and DR drills, and ``custom:`` entries.

``max``/``min`` are hard bounds (the value holds them or fails); ``warn``/``crit`` a threshold judged
higher-is-worse unless ``worse: lower``. One model, so every section reads the same and says the same
when it is written wrong.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from opsproof.environment.base import Model
from opsproof.thresholds import Ceiling, Floor

LIMIT_KEYS = ("max", "min", "warn", "crit")


class Limits(Model):
    """``{max: 0}``, ``{min: 1}``, ``{warn: 5, crit: 20}`` or ``{warn: 90, crit: 70, worse: lower}``."""

    max: float | None = None
    min: float | None = None
    warn: float | None = None
    crit: float | None = None
    worse: Literal["higher", "lower"] = "higher"
    limits_required: ClassVar[bool] = True  # an invariant needs a limit; a custom entry may carry values only
    bounds_only: ClassVar[bool] = False  # a drill's invariant holds or not: no warn/crit

    def _check_limits(self):
        hard, judged = self.max is not None or self.min is not None, self.warn is not None or self.crit is not None
        if self.limits_required and not (hard or judged):
            raise ValueError("give max, min or warn/crit" if not self.bounds_only else "give max, min or both")
        if hard and judged:
            raise ValueError("give either max/min or warn/crit, not both")
        if self.bounds_only and judged:
            raise ValueError("takes max and/or min (not warn/crit): recovery either holds it or not")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g}): no value could pass")
        self.threshold  # noqa: B018 - validates the warn/crit order now, not when the check runs
        return self

    @property
    def bounds(self) -> list[tuple[str, float]]:
        """The hard limits as ``(op, limit)``: ``[("<=", 50)]`` for ``max: 50``."""
        return [(op, limit) for op, limit in (("<=", self.max), (">=", self.min)) if limit is not None]

    @property
    def threshold(self) -> Ceiling | Floor | None:
        if self.warn is None and self.crit is None:
            return None
        kind = Ceiling if self.worse == "higher" else Floor
        return kind(warn=self.warn, crit=self.crit)
