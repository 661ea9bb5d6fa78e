"""Expectations of Prometheus and Alertmanager: PromQL queries, critical alerts firing, rule groups evaluating.

Both are HTTP APIs that may sit behind basic or bearer auth, extra headers and a private CA, given here
as they are for HTTP targets (and redacted the same way).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from opsproof.environment.base import Model, Seconds, Target
from opsproof.environment.selectors import parse_matchers
from opsproof.environment.web import Auth, HttpTarget, Name, Url
from opsproof.thresholds import Ceiling, Floor


class PromQuery(Model):
    """One named instant query; its first series' value is judged (empty result: cannot measure)."""

    name: Name
    query: str
    ceiling: Ceiling | None = None
    floor: Floor | None = None

    @model_validator(mode="after")
    def _limited(self):
        if self.ceiling is None and self.floor is None:
            raise ValueError("give a ceiling, a floor or both")
        return self


class FiringAlerts(Model):
    """No alert matching ``matchers`` firing (at most ``max``); an alert named in ``ignore`` is left out
    (``Watchdog``, which fires on purpose). No alert at all is 0, not an error."""

    matchers: str = Field('severity="critical"', description='label matchers, e.g. severity=~"critical|page"')
    max: Annotated[int, Field(ge=0)] = 0
    ignore: list[str] = Field(default_factory=list, description="alert names that never count")

    @field_validator("matchers")
    @classmethod
    def _readable(cls, value):
        if not parse_matchers(value):
            raise ValueError("give at least one label matcher, e.g. severity=\"critical\"")
        return value


class RuleHealth(Model):
    """Alerting and recording rules loaded (at least ``min_rules``), none failing to evaluate."""

    min_rules: Annotated[int, Field(ge=0)] = 1


class ApiTarget(Target):
    """What Prometheus and Alertmanager share: a URL, a time limit and how to reach it."""

    url: Url
    timeout_s: Seconds = 5.0
    verify_tls: bool = True
    ca_file: str | None = Field(None, description="PEM bundle to verify the server against (default: system store)")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    auth: Auth | None = None


class PrometheusTarget(ApiTarget):
    """A Prometheus HTTP API: named instant queries (``/api/v1/query``) judged against thresholds, critical
    alerts firing (``ALERTS``) and rule groups evaluating (``/api/v1/rules``)."""

    kind: ClassVar[str] = "prometheus"
    queries: list[PromQuery] = Field(default_factory=list)
    alerts: FiringAlerts | None = None
    rules: RuleHealth | None = None

    _unique_names = field_validator("queries")(HttpTarget._unique_names.__func__)


class AlertmanagerTarget(ApiTarget):
    """An Alertmanager (API v2): no critical alert active (silenced and inhibited ones left out)."""

    kind: ClassVar[str] = "alertmanager"
    alerts: FiringAlerts = Field(default_factory=FiringAlerts)
