"""What every section of an environment file builds on: the strict model, the target, severities, durations.

Its own module so the kinds' models import it and the environment imports them, never the other way round.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

Severity = Literal["p0", "p1", "p2", "p3"]
Tier = Literal["production", "staging", "sandbox"]
TargetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LIMITS = ("warn", "crit", "max", "min")


def parse_duration(value) -> float:
    """``"24h"`` -> 86400.0; ``"1h30m"``, ``"45s"``, ``"7d"``, ``"250ms"``; a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|[smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration like 24h, 30m, 1h30m or 7d")
    return float(sum(float(n) * _UNITS_S[u] for n, u in parts))


def show_duration(seconds: float) -> str:
    """3600 -> "1h", 90 -> "90s", 604800 -> "7d": a limit as a person writes it."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS_S[unit] and seconds % _UNITS_S[unit] == 0:
            return f"{seconds / _UNITS_S[unit]:g}{unit}"
    return f"{seconds:g}s"


def seconds(most: float):
    """A length of time in seconds, written ``30s``/``5m``/``24h`` or as a number, above 0 and at most ``most``."""

    def within(value: float) -> float:
        if not 0 < value <= most:  # NaN fails too
            raise ValueError(f"must be above 0s and at most {show_duration(most)} (got {show_duration(value)})"
                             if value == value else "must be a duration like 30s, 5m or 24h")
        return value

    return Annotated[float, BeforeValidator(parse_duration), AfterValidator(within)]


# The documented limits (README "Environment files"): one network call, a whole operation, an age.
Seconds = seconds(3600)  # a timeout of one call: connect, request, statement
Age = seconds(30 * 86400)  # how old something may be: a long-running session, a save
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def durations_in(data, fields: dict) -> dict:
    """Time written as a duration under the key a person writes: ``timeout: 30s`` is ``timeout_s: 30``;
    ``lag_ms: 1.5s`` is 1500; ``replication_lag_s: {warn: 30s, crit: 5m}`` is in seconds.

    Applied to every model's input, so every ``*_s`` and ``*_ms`` key, and its thresholds, take durations.
    """
    if not isinstance(data, dict):
        return data
    converted = {}
    for key, value in data.items():
        if isinstance(key, str) and key not in fields:
            for suffix in ("_s", "_ms"):
                if key + suffix in fields and key + suffix not in data and _is_duration(value):
                    key = key + suffix
        scale = 1000.0 if isinstance(key, str) and key.endswith("_ms") else 1.0 \
            if isinstance(key, str) and key.endswith("_s") else None
        if scale is not None and isinstance(value, str) and _is_duration(value):
            value = parse_duration(value) * scale
        elif scale is not None and isinstance(value, dict):
            value = {k: parse_duration(v) * scale if k in _LIMITS and isinstance(v, str) and _is_duration(v) else v
                     for k, v in value.items()}
        converted[key] = value
    return converted


def _is_duration(value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


class Model(BaseModel):
    # defer_build: a model's validator is built when first used, not at import: a run loads only its file's kinds
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False,
                              defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _time_as_duration(cls, data):
        return durations_in(data, cls.model_fields)


class Eventually(Model):
    """Retry each check until it passes or ``within_s`` has passed, ``every_s`` apart; every attempt is evidence."""

    within_s: seconds(86400)
    every_s: seconds(600) = 1.0


class Soak(Model):
    """Re-run each check every ``every_s`` for ``window_s``; a failure in any sample fails it (the opposite of
    eventually). Written ``{window_s: 30m, every_s: 1m}`` or ``"30m/1m"``.

    >>> Soak.model_validate("30m/1m").samples
    30
    """

    window_s: seconds(86400)
    every_s: seconds(3600)

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
