"""``custom:``: named values for checks of your own, validated like the built-in thresholds.

Each entry is one number a check judges (``warn``/``crit``; higher is worse unless ``worse: lower``),
optionally for one target, over a ``window`` written as a duration, with any other ``values`` the
check needs. Its name is the measure in the evidence line, so it carries its unit: a name ending in
``_pct`` takes limits within 0..100, and only a name ending in ``_s`` takes limits written as
durations (``30m``), judged in seconds.

>>> entry = environment.custom["reconciliation_mismatches"]        # doctest: +SKIP
>>> entry.threshold, entry.window_s, entry.target                   # doctest: +SKIP
(Ceiling(warn=5.0, crit=20.0), 86400.0, 'postgres.main')
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, field_validator, model_validator

from opsproof.environment.base import Duration, parse_duration
from opsproof.environment.limits import LIMIT_KEYS, Limits

Scalar = str | int | float | bool | None
MeasureName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
TargetRef = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Custom(Limits):
    """One value a check of your own reads: ``custom("reconciliation_mismatches")``; its limits take the
    shape of every invariant (max, min, warn, crit, worse)."""

    limits_required: ClassVar[bool] = False
    name: str = ""
    target: TargetRef | None = Field(None, description="the target it is for, e.g. postgres.main (default: any)")
    window: Duration | None = Field(None, description="how far back the check looks: 1h, 24h, 7d")
    values: dict[MeasureName, Scalar | list[Scalar]] = Field(default_factory=dict)

    @field_validator("values", mode="before")
    @classmethod
    def _plain(cls, value):
        """Values are what a YAML line holds: a number, text, true/false, or a list of them."""
        for key, item in (value.items() if isinstance(value, dict) else ()):
            items = item if isinstance(item, list) else [item]
            if any(x is not None and not isinstance(x, (str, int, float, bool)) for x in items):
                raise ValueError(f"{key}: give a number, text, true/false or a list of them")
        return value

    @model_validator(mode="before")
    @classmethod
    def _durations(cls, data):
        """``warn: 30m`` is 1800 seconds, for a name that says seconds."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in LIMIT_KEYS:
            if isinstance(data.get(key), str):
                text, data[key] = data[key], parse_duration(data[key])
                if not str(data.get("name", "")).endswith("_s"):
                    raise ValueError(f"{key}: {text!r} is a duration; end the name in _s so the evidence "
                                     f"says its unit")
        return data

    @model_validator(mode="after")
    def _limits(self):
        if self.name.endswith("_pct"):
            for key in LIMIT_KEYS:
                value = getattr(self, key)
                if value is not None and not 0 <= value <= 100:
                    raise ValueError(f"{key} ({value:g}) is a percentage and must be within 0..100")
        return self._check_limits()

    @property
    def window_s(self) -> float | None:
        return self.window
