"""What every section of an environment file builds on: the strict model, the target, severities, durations.

Its own module so the kinds' models import it and the environment imports them, never the other way round.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

Severity = Literal["p0", "p1", "p2", "p3"]
Tier = Literal["production", "staging", "sandbox"]
TargetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Seconds = Annotated[float, Field(gt=0, le=3600)]
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value) -> float:
    """``"24h"`` -> 86400.0; ``"1h30m"``, ``"45s"``, ``"7d"``; a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration like 24h, 30m, 1h30m or 7d")
    return float(sum(float(n) * _UNITS_S[u] for n, u in parts))


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Eventually(Model):
    """Retry each check until it passes or ``within_s`` has passed, ``every_s`` apart; every attempt is evidence."""

    within_s: Seconds
    every_s: Annotated[float, Field(gt=0, le=600)] = 1.0


class Soak(Model):
    """Re-run each check every ``every_s`` for ``window_s``; a failure in any sample fails it (the opposite of
    eventually). Written ``{window_s: 30m, every_s: 1m}`` or ``"30m/1m"``.

    >>> Soak.model_validate("30m/1m").samples
    30
    """

    window_s: Duration
    every_s: Duration

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        if isinstance(value, str):
            window, slash, every = value.partition("/")
            if not slash:
                raise ValueError(f"{value!r} is not WINDOW/EVERY, e.g. 30m/1m")
            return {"window_s": window, "every_s": every}
        return value

    @model_validator(mode="after")
    def _fits(self):
        if self.every_s > self.window_s:
            raise ValueError(f"every_s ({self.every_s:g} s) is longer than window_s ({self.window_s:g} s)")
        return self

    @property
    def samples(self) -> int:
        """How many times each check runs: one at the start, then one every ``every_s`` within the window."""
        return max(1, int(self.window_s // self.every_s))


class Target(Model):
    """What every target kind has: its name (the YAML key) and a severity override for its checks."""

    kind: ClassVar[str] = ""
    name: str = ""
    severity: Severity | None = None
    eventually: Eventually | None = None
    soak: Soak | None = None

    @model_validator(mode="after")
    def _soak_or_eventually(self):
        if self.soak is not None and self.eventually is not None:
            raise ValueError("soak and eventually cannot be combined on one target: soak fails on any failed "
                             "sample, eventually retries until the first pass")
        return self

    @classmethod
    def check_section(cls, targets: dict[str, Target], environment) -> None:
        """Rules across this kind's targets, or with other sections (a backup set's source must exist).

        Called once the whole file has validated; raise ValueError naming the key path.
        """

    @property
    def where(self) -> str:
        """``postgres.main``: how evidence messages and reports name the target."""
        return f"{self.kind}.{self.name}"
