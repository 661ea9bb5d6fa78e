"""Expectations of HTTP targets (health, readiness, latency, smoke requests, TLS, metrics) and PromQL.

Kept apart from model.py so the web areas can grow without crowding the other kinds.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator

from opsproof.environment.base import Model, Seconds, Target
from opsproof.environment.versions import HttpVersion
from opsproof.thresholds import Ceiling, Floor, PercentCeiling

JsonScalar = str | int | float | bool | None
Status = Annotated[int, Field(ge=100, le=599)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # RFC 9110: they change nothing on the server
SELECTOR = re.compile(r'^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?$')
LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"\s*(?:,|$)')


class ResponseExpectation(Model):
    """What one response must show: status, JSON fields (dotted paths), fields that must exist, headers, body."""

    path: str = "/health"
    status: Status = 200
    json_fields: dict[str, JsonScalar] = Field(default_factory=dict, alias="json")
    exists: list[str] = Field(default_factory=list, description="dotted JSON paths that must be present")
    headers: dict[str, str] = Field(default_factory=dict, description="response headers and their exact values")
    body_pattern: str | None = Field(None, description="a regular expression the body must contain")

    @field_validator("body_pattern")
    @classmethod
    def _compiles(cls, value):
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value


class HealthExpectation(ResponseExpectation):
    """The runbook's ``curl /health``, plus how quickly it must answer."""

    response_time_ms: Ceiling | None = None


class SmokeRequest(ResponseExpectation):
    """One request of the post-deploy smoke list (``curl /v1/wallets``): its own result."""

    name: Name
    method: Method = "GET"
    path: str
    json_body: object = Field(None, description="request body sent as JSON")
    body: str | None = Field(None, description="request body sent as-is (set content-type in request_headers)")
    request_headers: dict[str, str] = Field(default_factory=dict, description="headers sent with this request")
    read_only: bool = Field(False, description="this non-GET request changes nothing (allowed on production)")

    @model_validator(mode="after")
    def _one_body(self):
        if self.body is not None and self.json_body is not None:
            raise ValueError("give body or json_body, not both")
        return self


class ReadyExpectation(Model):
    """A readiness endpoint whose body lists components: ``{"checks": {"database": {"ready": true}}}``."""

    path: str = "/ready"
    components_path: str = "checks"
    ready_field: str = "ready"
    components: list[str] = Field(default_factory=list, description="components that must be listed")


class LatencyExpectation(Model):
    path: str = "/health"
    samples: Annotated[int, Field(ge=1, le=1000)] = 10
    p95_ms: Ceiling | None = None


class Dependency(Model):
    """An external provider's status endpoint: its own URL, timeout and severity."""

    name: Name
    url: Url
    status: Status = 200
    json_fields: dict[str, JsonScalar] = Field(default_factory=dict, alias="json")
    timeout_s: Seconds = 5.0
    severity: Literal["p0", "p1", "p2", "p3"] | None = None


class Auth(Model):
    """Bearer token or basic credentials; both secrets, redacted everywhere."""

    bearer_token: SecretStr | None = None
    basic_user: str | None = None
    basic_password: SecretStr | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if self.bearer_token is not None and (self.basic_user or self.basic_password):
            raise ValueError("give bearer_token or basic_user/basic_password, not both")
        if (self.basic_user is None) != (self.basic_password is None):
            raise ValueError("basic auth needs both basic_user and basic_password")
        if self.bearer_token is None and self.basic_user is None:
            raise ValueError("give bearer_token or basic_user and basic_password")
        return self


class TlsExpectation(Model):
    """The certificate the target serves: days to expiry, hostname, chain and protocol version."""

    days_left: Floor | None = None
    hostname: str | None = Field(None, description="name the certificate must match (default: the URL's host)")
    ca_file: str | None = Field(None, description="PEM bundle to verify the chain against (default: system store)")
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"


class GaugeLimits(Model):
    ceiling: Ceiling | None = None
    floor: Floor | None = None


class ErrorRatio(Model):
    """Errors as a share of requests between two scrapes ``gap_s`` apart."""

    errors: str = 'errors_total'
    total: str = 'http_requests_total'
    gap_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    pct: PercentCeiling

    @field_validator("errors", "total")
    @classmethod
    def _selector(cls, value):
        parse_selector(value)  # the run's own parser: what it cannot read is refused here, not misread later
        return value


class MetricsExpectation(Model):
    """Prometheus text at ``path``; series selectors like ``errors_total{status="500"}``."""

    path: str = "/metrics"
    counters: dict[str, Ceiling] = Field(default_factory=dict)
    gauges: dict[str, GaugeLimits] = Field(default_factory=dict)
    error_ratio: ErrorRatio | None = None

    @field_validator("counters", "gauges")
    @classmethod
    def _selectors(cls, value):
        for selector in value:
            parse_selector(selector)
        return value


def parse_selector(selector: str) -> tuple[str, dict[str, str]]:
    """``errors_total{status="500"}`` -> ("errors_total", {"status": "500"})."""
    match = SELECTOR.match(selector.strip())
    if not match:
        raise ValueError(f"{selector!r} is not a series selector like errors_total{{status=\"500\"}}")
    labels_text = match.group("labels") or ""
    labels = dict(LABEL.findall(labels_text))
    if labels_text.strip() and not labels:
        raise ValueError(f"{selector!r}: labels must look like name=\"value\"")
    return match.group("name"), labels


class HttpTarget(Target):
    kind: ClassVar[str] = "http"
    url: Url
    timeout_s: Seconds = 5.0
    verify_tls: bool = True
    follow_redirects: bool = False
    proxy: Url | None = Field(None, description="proxy URL; without it httpx honours HTTP(S)_PROXY and NO_PROXY")
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = Field(
        8 << 20, description="a response body (decompressed) past this is not read: the target is unreachable")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    auth: Auth | None = None
    health: HealthExpectation | None = None
    ready: ReadyExpectation | None = None
    latency: LatencyExpectation | None = None
    requests: list[SmokeRequest] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list)
    tls: TlsExpectation | None = None
    metrics: MetricsExpectation | None = None
    version: HttpVersion | None = None

    @classmethod
    def check_section(cls, targets: dict[str, HttpTarget], environment) -> None:
        """On production a smoke request may only read: a POST must say it changes nothing."""
        if environment.tier != "production":
            return
        for target in targets.values():
            for request in target.requests:
                if request.method not in SAFE_METHODS and not request.read_only:
                    raise ValueError(f"http.{target.name}.requests.{request.name}: {request.method} on tier "
                                     f"production; production is read-only (set read_only: true only for a "
                                     f"request that changes nothing, such as a search)")

    @field_validator("requests", "dependencies")
    @classmethod
    def _unique_names(cls, value):
        names = [item.name for item in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate names: {', '.join(duplicates)}")
        return value


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


class PrometheusTarget(Target):
    """A Prometheus HTTP API: named instant queries (``/api/v1/query``) judged against thresholds."""

    kind: ClassVar[str] = "prometheus"
    url: Url
    timeout_s: Seconds = 5.0
    queries: list[PromQuery] = Field(default_factory=list)

    _unique_names = field_validator("queries")(HttpTarget._unique_names.__func__)
