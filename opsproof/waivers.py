"""Waivers: a known failure, accepted by a named approver until a date, with a ticket and a reason.

A failed or errored check whose id matches a valid waiver is *waived* (reported with every field,
does not gate); an expired waiver no longer applies and the failure says so; a waiver that waived
nothing in a run is *stale*. Matching is a pure function of ids, waivers and today's date.

>>> decide("checks/test_http.py::test_health_status_is_expected[api]", waivers, date(2026, 11, 23))
Decision(waiver=Waiver(check='*test_health_status*', ...), expired=None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opsproof.errors import ConfigError


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str = Field(min_length=1, description="fnmatch pattern on the check id (node id or module::name[target])")
    justification: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    ticket: str = Field(min_length=1)
    created: date
    expires: date

    @model_validator(mode="after")
    def _expires_after_created(self):
        if self.expires < self.created:
            raise ValueError(f"expires ({self.expires}) is before created ({self.created})")
        return self

    def matches(self, check_id: str) -> bool:
        short = check_id.split("/")[-1]
        return self.check in (check_id, short) or fnmatchcase(check_id, self.check) or fnmatchcase(short, self.check)

    def shown(self) -> dict:
        return self.model_dump(mode="json")


class WaiverFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    waivers: list[Waiver] = Field(default_factory=list)


def waivers_path(env_file: Path, env_name: str, waivers_file: str | None) -> Path | None:
    """``waivers_file`` (relative to the environment file), else ``<name>.waivers.yaml`` beside it if present."""
    if waivers_file:
        path = Path(waivers_file)
        return path if path.is_absolute() else env_file.parent / path
    default = env_file.parent / f"{env_name}.waivers.yaml"
    return default if default.exists() else None


def load(path: Path | None) -> list[Waiver]:
    """Validated waivers; any problem is a ConfigError naming the file and key (exit 4)."""
    if path is None:
        return []
    shown = str(path)
    if not os.path.exists(path):
        raise ConfigError(shown, "", "no such waivers file")
    from opsproof.environment import yamlsafe  # bounded and strict: a waivers_file at /dev/zero is refused

    try:
        raw = yamlsafe.load_yaml(yamlsafe.read_text(path, shown, what="waivers file"), shown)
    except yaml.YAMLError as error:
        raise ConfigError(shown, "", f"not valid YAML: {getattr(error, 'problem', None) or error}") from None
    try:
        return list(WaiverFile.model_validate(raw or {}).waivers)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise ConfigError(shown, key, problem) from None


@dataclass(frozen=True)
class Decision:
    waiver: Waiver | None = None  # the valid waiver that applies
    expired: Waiver | None = None  # a matching waiver that expired (only when no valid one applies)

    @property
    def note(self) -> str:
        return f"waiver expired on {self.expired.expires.isoformat()}" if self.expired else ""


def decide(check_id: str, waivers: list[Waiver], today: date) -> Decision:
    """The first valid waiver matching ``check_id``; else the most recently expired matching one."""
    matching = [w for w in waivers if w.matches(check_id)]
    valid = [w for w in matching if w.expires >= today]
    if valid:
        return Decision(waiver=valid[0])
    expired = max(matching, key=lambda w: w.expires, default=None)
    return Decision(expired=expired)


def stale(waivers: list[Waiver], waived_ids: dict[int, list[str]], run_ids: list[str], today: date) -> list[dict]:
    """Valid waivers that waived nothing in this run, with why (no check matched, or the checks passed)."""
    found = []
    for index, waiver in enumerate(waivers):
        if waiver.expires < today or waived_ids.get(index):
            continue
        matched = [cid for cid in run_ids if waiver.matches(cid)]
        reason = "matched checks passed" if matched else "matches no check in this run"
        found.append({**waiver.shown(), "reason": reason})
    return found


def expired(waivers: list[Waiver], today: date) -> list[dict]:
    return [waiver.shown() for waiver in waivers if waiver.expires < today]


def summary(waivers: list[Waiver], applied: dict[str, dict | None], today: date) -> dict:
    """A run's waivers: those applied (with the checks they waived), expired and stale.

    ``applied`` maps every check id of the run to the waiver it carries (``Waiver.shown()``), or None.
    """
    waived = {index: [cid for cid, shown in applied.items() if shown == waiver.shown()]
              for index, waiver in enumerate(waivers)}
    return {
        "applied": [{**w.shown(), "checks": waived[i]} for i, w in enumerate(waivers) if waived[i]],
        "expired": expired(waivers, today),
        "stale": stale(waivers, waived, list(applied), today),
    }
