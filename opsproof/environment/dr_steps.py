"""One step of a DR scenario: its name, its type, its timeout and what it acts on; the keys each type takes.

Types: ``run`` (a command here or on a ``host`` target), ``promote`` (a PostgreSQL or MySQL/MariaDB
replica target), ``restore`` (a backup set into a database target or a data directory), ``wait_healthy``
(named targets, or their checks of a suite) and ``sandbox`` (the embedded sandbox's own actions).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, model_validator

from opsproof.environment.base import Duration, Model

StepName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Ref = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[A-Za-z0-9][A-Za-z0-9_.-]*$")]  # postgres.main
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
StepType = Literal["run", "promote", "restore", "wait_healthy", "sandbox"]

# The kind of target each sandbox action acts on (the actions themselves live in opsproof.sandbox.drill).
SANDBOX_ACTIONS = {"stop_api": "http", "start_api": "http", "stop_database": "postgres", "start_database": "postgres",
                   "fresh_database": "postgres", "restore_database": "postgres", "lose_cache": "redis",
                   "start_cache": "redis"}
SandboxAction = Literal[tuple(SANDBOX_ACTIONS)]  # type: ignore[valid-type]
HEALTH_KINDS = ("http", "postgres", "mysql", "redis", "tcp", "host")  # wait_healthy without a suite probes these

# type -> (keys it needs, keys it may take), besides name, type and timeout
KEYS = {
    "run": ({"command"}, {"host", "target", "expect_exit", "env"}),
    "promote": ({"target"}, set()),
    "restore": ({"backup"}, {"into", "data_dir"}),
    "wait_healthy": ({"targets"}, {"suite", "every"}),
    "sandbox": ({"action", "target"}, {"backup_dir"}),
}


class DrStep(Model):
    """A step of a scenario or of its rollback; the runner times it and stops it at ``timeout``."""

    name: StepName
    type: StepType
    timeout: Duration = Field(description="a duration: 30s, 5m; the step is stopped or given up at it")
    command: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="run: a shell command; evidence names the step, never the command (it may hold secrets)")
    host: Ref | None = Field(None, description="run: a host target (ssh); default this machine")
    expect_exit: Annotated[int, Field(ge=0, le=255)] = 0
    env: dict[EnvName, SecretStr] = Field(default_factory=dict, description="run: variables; values are secrets")
    target: Ref | None = Field(None, description="promote: the replica; run, sandbox: the target it acts on")
    backup: Ref | None = Field(None, description="restore: a backup set, backups.<name>")
    into: Ref | None = Field(None, description="restore: a postgres or mysql target (logical formats)")
    data_dir: Annotated[str, StringConstraints(pattern=r"^/")] | None = Field(
        None, description="restore: an absolute data directory (pgbackrest, pg_basebackup)")
    targets: list[Ref] = Field(default_factory=list, description="wait_healthy: these targets")
    suite: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")] | None = Field(
        None, description="wait_healthy: until these targets' checks of this suite pass (else their probes answer)")
    every: Duration = Field(1.0, description="wait_healthy: between attempts")
    action: SandboxAction | None = None  # type: ignore[valid-type]
    backup_dir: str | None = Field(None, description="sandbox restore_database: where *.dump are (else the sandbox's)")

    @model_validator(mode="before")
    @classmethod
    def _has_a_timeout(cls, data):
        if isinstance(data, dict) and "timeout" not in data:
            raise ValueError("no timeout: every step needs one (a duration like 30s or 5m)")
        return data

    @model_validator(mode="after")
    def _keys_of_its_type(self):
        given = {key for key in self.model_fields_set - {"name", "type", "timeout"} if getattr(self, key) is not None}
        needed, optional = KEYS[self.type]
        if needed - given:
            raise ValueError(f"a {self.type} step needs {', '.join(sorted(needed - given))}")
        if given - needed - optional:
            takes = ", ".join(sorted(needed | optional))
            raise ValueError(f"a {self.type} step takes {takes}, not {', '.join(sorted(given - needed - optional))}")
        if self.type == "restore" and (self.into is None) == (self.data_dir is None):
            raise ValueError("a restore step needs exactly one of into (a database target) or data_dir")
        if self.backup_dir is not None and self.action != "restore_database":
            raise ValueError("backup_dir is for the sandbox action restore_database")
        return self

    def acts_on(self) -> list[str]:
        """The targets this step changes (wait_healthy only looks; restore reads its backup set)."""
        return [ref for ref in (self.host, self.target, self.into) if ref]
