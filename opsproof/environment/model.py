"""The typed shape of an environment file. YAML keys equal these field names.

The environment's own keys are declared here; each kind of ``KINDS`` adds its section (``http:``,
``postgres:``...), a mapping of target names to that kind's model.
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, create_model, field_validator, model_validator

from opsproof.environment.base import Model, Severity, Target, TargetName, Tier
from opsproof.environment.custom import Custom, MeasureName
from opsproof.environment.evidence_store import EvidenceStore
from opsproof.environment.kinds import KINDS
from opsproof.environment.notify import Notify
from opsproof.environment.problems import Problems, split_key_path
from opsproof.errors import Problem


class Settings(Model):
    """The keys every environment file has, whatever its targets."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    tier: Tier
    description: str = ""
    severity: Severity | None = Field(None, description="severity of checks that carry no marker of their own "
                                                        "(default p2); never overrides a check's marker")
    vars_file: str | None = Field(None, description="KEY=VALUE file read for ${VAR} references")
    history_dir: str | None = Field(None, description="where history.jsonl lives (default reports/<name>/)")
    waivers_file: str | None = Field(None, description="waivers (default <name>.waivers.yaml beside this file)")
    custom: dict[MeasureName, Custom] = Field(default_factory=dict, description="values for checks of your own")
    notify: Notify | None = Field(None, description="where gating failures are sent: alertmanager, webhook")
    history_signing_key: str | None = Field(None, description="Ed25519 key signing each history record: a PEM or "
                                                              "OpenSSH key file (relative to this file), or the key")
    history_public_key: str | list[str] | None = Field(None, description="the key(s) history verify trusts: a "
                                                                         "SHA256 fingerprint, ssh-ed25519 line or file")
    evidence_store: EvidenceStore | None = Field(None, description="s3://bucket/prefix keeping runs off the runner")

    @field_validator("*", mode="before")
    @classmethod
    def _name_targets(cls, value, info: ValidationInfo):
        """An empty section is no targets; each target (and custom entry) learns its name from its key."""
        if info.field_name not in KINDS and info.field_name != "custom":
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
        """Each kind's rules across its targets and with other sections (a backup set's source must exist),
        and custom entries' targets: every kind's first problem, reported together."""
        found: list[Problem] = []
        for kind in KINDS.values():
            targets = self.targets(kind.name)
            if _section_problems(kind.model, targets, self, found) and len(targets) > 1:
                for name, target in targets.items():  # each target's own first problem too, not just the first one's
                    _section_problems(kind.model, {name: target}, self, found)
        for entry in self.custom.values():
            kind, _, name = (entry.target or "").partition(".")
            if entry.target and name not in (self.targets(kind) if kind in KINDS else {}):
                found.append(Problem(f"custom.{entry.name}.target", f"{entry.target} is not a target in this "
                                                                     f"environment"))
        if found:
            raise Problems(found)
        return self

    def targets(self, kind: str) -> dict[str, Target]:
        return getattr(self, kind)

    @property
    def read_only(self) -> bool:
        """Sessions opened on anything but the sandbox tier are read-only."""
        return self.tier != "sandbox"


def _section_problems(model, targets: dict, environment, found: list[Problem]) -> bool:
    """Run one kind's rules across ``targets``; add what they refuse to ``found`` (once); True if they refused."""
    try:
        model.check_section(targets, environment)
    except ValueError as error:
        for problem in error.problems if isinstance(error, Problems) else [Problem(*split_key_path(str(error)))]:
            if problem not in found:
                found.append(problem)
        return True
    return False


def _sections(present: frozenset[str] | None = None) -> dict:
    """One field per registered kind: ``postgres: dict[TargetName, PostgresTarget]``; a kind not ``present``
    in the file is an empty mapping its model is never built for."""
    clashes = sorted(set(KINDS) & set(Settings.model_fields))
    if clashes:
        raise TypeError(f"opsproof kinds: {', '.join(clashes)} is an environment key, not a kind name")
    return {name: (dict[TargetName, kind.model] if present is None or name in present else dict,
                   Field(default_factory=dict)) for name, kind in KINDS.items()}


Environment = create_model("Environment", __base__=Settings, __module__=__name__, **_sections())
Environment.__doc__ = "An environment file: its own keys, then one section of named targets per kind."


@functools.lru_cache(maxsize=None)
def model_for(present: frozenset[str]) -> type[Settings]:
    """The Environment as it validates a file with these kinds' sections: the same fields and rules, with the
    validators of only those kinds built (building every kind's cost a run ~100 ms it did not use)."""
    if present >= set(KINDS):
        return Environment
    return create_model("Environment", __base__=Settings, __module__=__name__, __doc__=Environment.__doc__,
                        **_sections(present))
