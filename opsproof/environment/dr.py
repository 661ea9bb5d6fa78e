"""DR drill scenarios: what is taken down, how it is recovered, what proves recovery."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from opsproof.environment.base import Model, Seconds, Target

DrStep = Literal["stop_api", "stop_database", "lose_cache", "restore_database", "start_cache", "start_api"]
DrVerification = Literal["api_health", "api_data", "tables_restored", "invariants"]


class DrInvariant(Model):
    """A query returning one number that must stay within bounds after recovery."""

    sql: str
    min: float | None = None
    max: float | None = None


class DrScenario(Target):
    """A disaster-recovery drill: what is taken down, how it is recovered, what proves recovery."""

    kind: ClassVar[str] = "dr"
    sandbox_dir: str = Field(description="state directory of the sandbox the drill acts on")
    backup_dir: str | None = Field(None, description="where *.dump backups are (default: the sandbox's)")
    steps: Annotated[list[DrStep], Field(min_length=1)]
    verify: list[DrVerification] = Field(default_factory=lambda: ["api_health", "tables_restored"])
    invariants: dict[str, DrInvariant] = Field(default_factory=dict)
    freshness_sql: str = "SELECT max(created_at) FROM transactions"
    rto_s: Annotated[float, Field(gt=0)]
    rpo_s: Annotated[float, Field(ge=0)]
    healthy_within_s: Seconds = 30.0
