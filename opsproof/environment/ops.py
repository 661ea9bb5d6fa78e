"""What command and log checks expect: a command's exit, output, JSON fields, a number and its time; a log
pattern counted over a window or required since a time.

A command check names its command, and evidence uses that name only: the command text, whose arguments
may hold secrets, never reaches a report. On a production tier a command must say ``read_only: true``.

>>> CommandCheck(name="horizon", run="php artisan horizon:status", stdout="running").timeout_s
30.0
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from opsproof.environment.base import Duration, Model, Severity, parse_duration
from opsproof.thresholds import Ceiling, Floor

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Bytes = Annotated[int, Field(ge=1024, le=1 << 34)]
Command = Annotated[str, Field(min_length=1, max_length=8192)]


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression ({exc})") from None
    return value


class NumberLimit(Model):
    """A number taken from the output (``regex`` with one group, or a dotted ``json`` path), judged warn/crit."""

    measure: Name = "value"
    regex: str | None = None
    json_path: str | None = Field(None, alias="json")
    warn: float | None = None
    crit: float | None = None
    worse: Literal["higher", "lower"] = "higher"

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value):
        return _regex(value)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.regex is None) == (self.json_path is None):
            raise ValueError("give regex (one group) or json (a dotted path), not both")
        if self.regex is not None and re.compile(self.regex).groups != 1:
            raise ValueError(f"regex {self.regex!r} must have exactly one group: the number")
        self.threshold  # noqa: B018 - warn/crit order checked at load
        return self

    @property
    def threshold(self) -> Ceiling | Floor:
        return (Ceiling if self.worse == "higher" else Floor)(warn=self.warn, crit=self.crit)


class CommandCheck(Model):
    """One command a runbook types (``pm2 status``, ``php artisan horizon:status``) and what its output must show."""

    name: Name
    run: Command
    read_only: bool = Field(False, description="this command changes nothing (required on production)")
    timeout: Duration = Field(30.0, le=3600)
    env: dict[EnvName, SecretStr] = Field(default_factory=dict, description="passed in its environment, not argv")
    exit_code: Annotated[int, Field(ge=0, le=255)] | None = 0
    stdout: str | None = Field(None, description="regular expression the output must match")
    stdout_absent: str | None = Field(None, description="regular expression the output must not match")
    json_fields: dict[str, str | int | float | bool | None] = Field(default_factory=dict, alias="json")
    number: NumberLimit | None = None
    duration_s: Ceiling | None = None
    max_output_bytes: Bytes = 1 << 20
    severity: Severity | None = None

    @field_validator("stdout", "stdout_absent")
    @classmethod
    def _compiles(cls, value):
        return _regex(value)

    @model_validator(mode="after")
    def _judged(self):
        judged = [self.exit_code, self.stdout, self.stdout_absent, self.json_fields or None, self.number,
                  self.duration_s]
        if all(x is None for x in judged):
            raise ValueError("judges nothing: give exit_code, stdout, stdout_absent, json, number or duration_s")
        return self

    @property
    def timeout_s(self) -> float:
        return self.timeout


class Timestamps(Model):
    """How a line says when it was written: a strptime ``format`` found anywhere in the line (``iso`` for
    ISO 8601); a stamp without a zone is read in ``utc_offset`` (default UTC)."""

    format: str = "iso"
    utc_offset: Annotated[str, Field(pattern=r"^[+-]\d{2}:?\d{2}$")] = "+00:00"


class LogExpectation(Model):
    """A pattern counted in recent log lines (``ERROR|Traceback`` at most N), or required (a startup line)."""

    name: Name
    pattern: str
    ignore_case: bool = False
    window: Duration | None = Field(None, description="count lines of the last 15m, 1h, 24h")
    since: str | None = Field(None, description="an ISO 8601 time (e.g. ${DEPLOYED_AT}) or a duration ago")
    count: Ceiling | None = Field(None, description="matching lines, warn/crit")
    present: bool = Field(False, description="at least one matching line since `since` (or in the window)")
    timestamps: Timestamps | None = None
    max_bytes: Bytes = 64 << 20
    timeout: Duration = Field(60.0, le=3600)
    keep_lines: Annotated[int, Field(ge=0, le=50)] = 5
    severity: Severity | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value):
        return _regex(value)

    @field_validator("since")
    @classmethod
    def _since(cls, value):
        if value is not None:
            since_s(value)
        return value

    @model_validator(mode="after")
    def _judged(self):
        if self.count is None and not self.present:
            raise ValueError("give count (warn/crit) or present: true, or the check cannot fail")
        if self.window is not None and self.since is not None:
            raise ValueError("give window or since, not both")
        return self

    def lookback_s(self) -> float | None:
        """How far back lines count, decided now (``since`` may be a time): None for the whole read."""
        return since_s(self.since) if self.since is not None else self.window


class HostLog(LogExpectation):
    """A log on a host: a ``file`` read from its end, a systemd ``journald`` unit, or a command's output."""

    file: Annotated[str, Field(pattern=r"^/\S*$")] | None = None
    journald: Annotated[str, Field(pattern=r"^[A-Za-z0-9@:._-]+$")] | None = Field(None, description="unit")
    run: Command | None = Field(None, description="a command whose output is the log: docker logs, pm2 logs")
    read_only: bool = Field(False, description="the run command changes nothing (required on production)")

    @model_validator(mode="after")
    def _one_source(self):
        sources = [k for k in ("file", "journald", "run") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"give exactly one source of file, journald, run (not {sources or 'none'})")
        if self.file is not None and self.timestamps is None and (self.window or self.since):
            raise ValueError("a file's window is judged by its lines' timestamps: give timestamps (format)")
        if self.run is not None and self.timestamps is None and (self.window or self.since):
            raise ValueError("a command's window is judged by its lines' timestamps: give timestamps (format), "
                             "or put the window in the command (docker logs --since 1h) and drop window/since")
        return self


class PodLog(LogExpectation):
    """Logs of every pod of a workload, from the API (``sinceSeconds``), one container or each."""

    workload: Name
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    namespace: Name | None = None
    container: str | None = None


def since_s(value: str) -> float:
    """Seconds back from now that ``since`` names: a duration (``30m``) or an ISO 8601 time."""
    try:
        return parse_duration(value)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is neither a duration (30m) nor an ISO 8601 time") from None
    if stamp.tzinfo is None:
        raise ValueError(f"{value!r} has no zone: write it with Z or +00:00")
    return max(0.0, datetime.now(stamp.tzinfo).timestamp() - stamp.timestamp())
