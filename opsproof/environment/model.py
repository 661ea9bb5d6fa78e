"""The typed shape of an environment file. YAML keys equal these field names."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from opsproof.environment.backups import BackupTarget
from opsproof.environment.base import Model, Severity, Target, TargetName, Tier
from opsproof.environment.datastores import MysqlTarget, PostgresTarget, RedisTarget
from opsproof.environment.dr import DrScenario
from opsproof.environment.host import HostTarget
from opsproof.environment.kubernetes import KubernetesTarget
from opsproof.environment.web import HttpTarget, PrometheusTarget


class Environment(Model):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    tier: Tier
    description: str = ""
    severity: Severity = Field("p2", description="severity of checks that do not set their own")
    vars_file: str | None = Field(None, description="KEY=VALUE file read for ${VAR} references")
    http: dict[TargetName, HttpTarget] = Field(default_factory=dict)
    postgres: dict[TargetName, PostgresTarget] = Field(default_factory=dict)
    redis: dict[TargetName, RedisTarget] = Field(default_factory=dict)
    kubernetes: dict[TargetName, KubernetesTarget] = Field(default_factory=dict)
    host: dict[TargetName, HostTarget] = Field(default_factory=dict)
    dr: dict[TargetName, DrScenario] = Field(default_factory=dict)
    history_dir: str | None = Field(None, description="where history.jsonl lives (default reports/<name>/)")
    waivers_file: str | None = Field(None, description="waivers (default <name>.waivers.yaml beside this file)")
    backups: dict[TargetName, BackupTarget] = Field(default_factory=dict)
    mysql: dict[TargetName, MysqlTarget] = Field(default_factory=dict)
    prometheus: dict[TargetName, PrometheusTarget] = Field(default_factory=dict)

    @field_validator("*", mode="before")
    @classmethod
    def _name_targets(cls, value, info: ValidationInfo):
        """An empty section is no targets; each target learns its name from its key."""
        if info.field_name not in KINDS:
            return value
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value
        named = {}
        for key, spec in value.items():
            if isinstance(spec, dict):
                if spec.get("name", key) != key:
                    raise ValueError(f"{key}: 'name' must equal the key or be left out")
                spec = {**spec, "name": key}
            named[key] = spec
        return named

    @model_validator(mode="after")
    def _sections_agree(self):
        """Each kind's rules across its targets and with other sections (a backup set's source must exist)."""
        for model, targets in ((BackupTarget, self.backups), (HttpTarget, self.http)):
            model.check_section(targets, self)
        return self

    def targets(self, kind: str) -> dict[str, Target]:
        return getattr(self, kind)

    @property
    def read_only(self) -> bool:
        """Sessions opened on anything but the sandbox tier are read-only."""
        return self.tier != "sandbox"


def _target_sections() -> tuple[str, ...]:
    """Every section of Environment that maps names to targets: adding a kind is adding a field."""
    kinds = []
    for name, info in Environment.model_fields.items():
        args = getattr(info.annotation, "__args__", ())
        if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], Target):
            kinds.append(name)
    return tuple(kinds)


KINDS = _target_sections()
