"""Data-store targets (PostgreSQL, Redis, MySQL/MariaDB): what the runbooks' database and cache pages expect."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, StringConstraints, model_validator

from opsproof.environment.base import Age, Seconds, Target
from opsproof.environment.limits import Limits
from opsproof.thresholds import Ceiling, PercentCeiling, PercentFloor

StatementTimeoutMs = Annotated[int, Field(gt=0, le=3_600_000)]


class Invariant(Limits):
    """A named query returning one number, limited like every invariant: ``{sql, max}``, ``{sql, min}`` or
    ``{sql, warn, crit}`` (a ceiling unless ``worse: lower``)."""

    sql: Annotated[str, StringConstraints(min_length=1)]

    @model_validator(mode="after")
    def _one_form(self):
        return self._check_limits()


class PostgresTarget(Target):
    kind: ClassVar[str] = "postgres"
    dsn: Annotated[str, StringConstraints(pattern=r"^postgres(ql)?://\S+$")]
    password: SecretStr | None = None
    connect_timeout_s: Seconds = 3.0
    statement_timeout_ms: StatementTimeoutMs = 5000
    expect_role: Literal["primary", "replica"] | None = None
    connections_pct: PercentCeiling | None = None
    long_running_s: Age | None = Field(None, description="active or idle-in-transaction sessions older fail")
    replicas: list[str] = Field(default_factory=list, description="application_name of each expected replica")
    replication_lag_bytes: Ceiling | None = None
    replication_lag_s: Ceiling | None = None
    statement_mean_ms: Ceiling | None = Field(None, description="slowest statement's mean (pg_stat_statements)")
    database_size_bytes: Ceiling | None = None
    invariants: dict[str, Invariant] = Field(default_factory=dict)


class RedisQueue(Ceiling):
    """A backlog limit on a list, sorted set or stream; with ``group``, the group's pending entries."""

    group: str | None = None


class RedisTarget(Target):
    kind: ClassVar[str] = "redis"
    url: Annotated[str, StringConstraints(pattern=r"^rediss?://\S+$")]
    password: SecretStr | None = None
    timeout_s: Seconds = 3.0
    ping_ms: Ceiling | None = None
    expect_role: Literal["master", "replica"] | None = None
    replica_lag_s: Ceiling | None = Field(None, description="seconds since the replica last heard its master")
    memory_pct: PercentCeiling | None = Field(None, description="used_memory / maxmemory")
    evicted_keys: Ceiling | None = Field(None, description="keys evicted since the server started")
    hit_rate_pct: PercentFloor | None = None
    min_lookups: Annotated[int, Field(ge=0)] = 100
    queues: dict[str, RedisQueue] = Field(default_factory=dict)
    max_since_save_s: Age | None = None
    connected_clients: Ceiling | None = None
    rejected_connections: Ceiling | None = Field(None, description="connections refused since the server started")


class MysqlTarget(Target):
    kind: ClassVar[str] = "mysql"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 3306
    user: str
    password: SecretStr | None = None
    database: str | None = None
    connect_timeout_s: Seconds = 3.0
    statement_timeout_ms: StatementTimeoutMs = 5000
    connections_pct: PercentCeiling | None = None
    long_running_s: Age | None = None
    replica_lag_s: Ceiling | None = None
    invariants: dict[str, Invariant] = Field(default_factory=dict)
