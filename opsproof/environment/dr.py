"""DR drill scenarios: named steps that act on the environment's own targets, then verification, RTO, RPO, rollback.

Everything a run would refuse is refused when the file loads: an unknown target, a step of the wrong
kind for its target, a missing timeout, a target outside ``acts_on``, a production scenario without its
game day, a marker row on production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BeforeValidator, Field, StringConstraints, ValidationInfo, model_validator

from opsproof.environment.base import Duration, Model, Target, parse_duration
from opsproof.environment.datastores import Invariant
from opsproof.environment.dr_steps import HEALTH_KINDS, SANDBOX_ACTIONS, DrStep, Ref, StepName

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
Span = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]  # a duration that may be 0s (an RPO)
DATABASE_KINDS = ("postgres", "mysql")
OLD_KEYS = ("rto_s", "rpo_s", "healthy_within_s", "freshness_sql", "backup_dir", "invariants")


class RpoMarker(Model):
    """Non-production: a row written to ``write`` just before the outage, looked for on ``read`` after recovery."""

    write: Ref
    read: Ref
    table: Identifier = "opsproof_dr_marker"


class RpoTimestamp(Model):
    """The newest row (``sql`` returns one timestamp) on ``source`` before the outage, on ``recovered`` after."""

    sql: Annotated[str, StringConstraints(min_length=1)]
    source: Ref
    recovered: Ref


class RpoMeasure(Model):
    marker: RpoMarker | None = None
    timestamp: RpoTimestamp | None = None

    @model_validator(mode="after")
    def _some(self):
        if self.marker is None and self.timestamp is None:
            raise ValueError("give marker, timestamp or both")
        return self


class DrInvariant(Invariant):
    """An invariant on a recovered database target: ``{target, sql, max}`` or ``min`` (a hard bound each)."""

    bounds_only: ClassVar[bool] = True
    target: Ref


class Verify(Model):
    """What proves recovery: these checks (a suite, check names, targets) and invariants, optionally
    against another environment file (the DR site), relative to this one."""

    environment: str | None = None
    suite: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")] | None = None
    checks: list[Annotated[str, StringConstraints(pattern=r"^test_[A-Za-z0-9_*?\[\]:.-]+$")]] = Field(
        default_factory=list, description="check names (fnmatch: test_health_*)")
    targets: list[Ref] = Field(default_factory=list)
    invariants: dict[Identifier, DrInvariant] = Field(default_factory=dict)
    timeout: Duration = Field(300.0, description="for the whole verification")

    @property
    def runs_checks(self) -> bool:
        return bool(self.suite or self.checks or self.targets)


class DrScenario(Target):
    """A DR drill: steps that act on ``acts_on`` only, verified, timed against ``rto`` and ``rpo``, rolled back."""

    kind: ClassVar[str] = "dr"
    description: str = ""
    acts_on: Annotated[list[Ref], Field(min_length=1)]
    steps: Annotated[list[DrStep], Field(min_length=1)]
    rollback: list[DrStep] = Field(default_factory=list)
    verify: Verify
    rto: Duration = Field(description="from the outage start to verified healthy")
    rpo: Span | None = Field(None, description="data the recovery may lose, measured by rpo_measure")
    rpo_measure: RpoMeasure | None = None
    outage_starts_at: StepName | None = Field(None, description="the step whose start is the outage (default: first)")
    game_day: bool = Field(False, description="production runs it only on a declared game day")
    approver: Annotated[str, StringConstraints(min_length=1)] | None = None
    sandbox_dir: str | None = Field(None, description="the sandbox that `sandbox` steps act on")

    @model_validator(mode="before")
    @classmethod
    def _not_the_old_shape(cls, data):
        old = isinstance(data, dict) and (any(k in data for k in OLD_KEYS) or isinstance(data.get("verify"), list)
                                          or (isinstance(data.get("steps"), list)
                                              and any(isinstance(s, str) for s in data["steps"])))
        if old:
            raise ValueError("this is the sandbox-only scenario of earlier opsproof: steps are now "
                             "{name, type, timeout, ...} (stop_api is {name: stop_api, type: sandbox, action: "
                             "stop_api, target: http.api, timeout: 1m}), rto_s/rpo_s are rto/rpo durations, verify "
                             "is {targets, invariants}; see README \"DR drills\"")
        return data

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo):
        names = [s.name for s in [*self.steps, *self.rollback]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"step names must be unique across steps and rollback: {', '.join(twice)}")
        if self.outage_starts_at and self.outage_starts_at not in [s.name for s in self.steps]:
            raise ValueError(f"outage_starts_at: {self.outage_starts_at} is not one of its steps")
        for where, step in self.all_steps():
            outside = [ref for ref in step.acts_on() if ref not in self.acts_on]
            if outside:
                raise ValueError(f"{where}: acts on {outside[0]}, which is not in acts_on {self.acts_on}")
        if self.rpo_measure and self.rpo_measure.marker and self.rpo_measure.marker.write not in self.acts_on:
            raise ValueError(f"rpo_measure.marker.write: writes to {self.rpo_measure.marker.write}, which is not in "
                             f"acts_on {self.acts_on}")
        if (self.rpo is None) != (self.rpo_measure is None):
            raise ValueError("rpo and rpo_measure go together: the target and how it is measured from data")
        if self.game_day and not self.approver:
            raise ValueError("game_day: true needs an approver (who approved the game day)")
        if any(s.type == "sandbox" for _, s in self.all_steps()) and not self.sandbox_dir:
            raise ValueError("sandbox steps need sandbox_dir (the sandbox they act on)")
        if not self.verify.runs_checks and not self.verify.invariants:
            raise ValueError("verify: give checks to run (suite, checks, targets) or invariants: a drill must prove "
                             "recovery")
        if self.verify.environment:
            self._dr_site_has_targets((info.context or {}).get("file"))
        return self

    def all_steps(self):
        """(key path, step) of every step and rollback step."""
        yield from ((f"steps.{i}", s) for i, s in enumerate(self.steps))
        yield from ((f"rollback.{i}", s) for i, s in enumerate(self.rollback))

    def dr_site(self, env_file: Path | None) -> Path | None:
        """The verify environment file (the DR site), relative to this environment's file."""
        if not self.verify.environment:
            return None
        path = Path(self.verify.environment)
        return path if path.is_absolute() or env_file is None else Path(env_file).parent / path

    def _dr_site_has_targets(self, env_file) -> None:
        """Its file exists and names the targets verify uses (read as YAML: its ${VAR}s resolve when it runs)."""
        import yaml

        path = self.dr_site(env_file)
        try:
            site = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError:
            raise ValueError(f"verify.environment: {self.verify.environment} not found") from None
        except yaml.YAMLError:
            raise ValueError(f"verify.environment: {self.verify.environment} is not valid YAML") from None
        refs = [*self.verify.targets, *(i.target for i in self.verify.invariants.values())]
        for ref in refs:
            kind, _, name = ref.partition(".")
            if not isinstance(site.get(kind), dict) or name not in site[kind]:
                raise ValueError(f"verify: {ref} is not a target in {self.verify.environment}")

    @classmethod
    def check_section(cls, targets: dict[str, DrScenario], environment) -> None:
        for scenario in targets.values():
            _check_against(scenario, environment)


def _kind(environment, ref: str, where: str, kinds: tuple[str, ...] | None = None) -> Target:
    """The target ``ref`` names; ValueError naming ``where`` when it is missing or of another kind."""
    kind, _, name = ref.partition(".")
    target = (getattr(environment, kind, None) or {}).get(name) if not kind.startswith("_") else None
    if not isinstance(target, Target):
        raise ValueError(f"{where}: {ref} is not a target in this environment")
    if kinds and kind not in kinds:
        raise ValueError(f"{where}: {ref} is a {kind} target; it must be {' or '.join(kinds)}")
    return target


def _check_against(s: DrScenario, environment) -> None:
    """The scenario's rules that need the rest of the file: targets exist and are of the right kind, tiers."""
    at = f"dr.{s.name}"
    for index, ref in enumerate(s.acts_on):
        _kind(environment, ref, f"{at}.acts_on.{index}")
    for where, step in s.all_steps():
        _check_step(step, environment, f"{at}.{where}")
    if s.rpo_measure and s.rpo_measure.marker:
        marker = s.rpo_measure.marker
        _kind(environment, marker.write, f"{at}.rpo_measure.marker.write", DATABASE_KINDS)
        _kind(environment, marker.read, f"{at}.rpo_measure.marker.read", DATABASE_KINDS)
    if s.rpo_measure and s.rpo_measure.timestamp:
        stamp = s.rpo_measure.timestamp
        _kind(environment, stamp.source, f"{at}.rpo_measure.timestamp.source", DATABASE_KINDS)
        _kind(environment, stamp.recovered, f"{at}.rpo_measure.timestamp.recovered", DATABASE_KINDS)
    if not s.verify.environment:
        for index, ref in enumerate(s.verify.targets):
            _kind(environment, ref, f"{at}.verify.targets.{index}")
        for name, invariant in s.verify.invariants.items():
            _kind(environment, invariant.target, f"{at}.verify.invariants.{name}.target", DATABASE_KINDS)
    if environment.tier == "production":
        if not (s.game_day and s.approver):
            raise ValueError(f"{at}.game_day: environment {environment.name} is tier production: a DR drill runs "
                             f"there only on a declared game day (game_day: true, approver: who approved it)")
        if s.rpo_measure and s.rpo_measure.marker:
            raise ValueError(f"{at}.rpo_measure.marker: no marker rows are written on tier production; measure "
                             f"the RPO with rpo_measure.timestamp")
    if environment.tier != "sandbox" and any(step.type == "sandbox" for _, step in s.all_steps()):
        raise ValueError(f"{at}: sandbox steps act on the embedded sandbox, in tier sandbox only")


def _check_step(step: DrStep, environment, where: str) -> None:
    if step.type == "run":
        if step.host:
            _kind(environment, step.host, f"{where}.host", ("host",))
        if step.target:
            _kind(environment, step.target, f"{where}.target")
    elif step.type == "promote":
        _kind(environment, step.target, f"{where}.target", DATABASE_KINDS)
    elif step.type == "restore":
        _check_restore(step, environment, where)
    elif step.type == "wait_healthy":
        for index, ref in enumerate(step.targets):
            _kind(environment, ref, f"{where}.targets.{index}", None if step.suite else HEALTH_KINDS)
    elif step.type == "sandbox":
        _kind(environment, step.target, f"{where}.target", (SANDBOX_ACTIONS[step.action],))


def _check_restore(step: DrStep, environment, where: str) -> None:
    from opsproof.environment.backups import LOGICAL_RESTORE_FORMATS, PHYSICAL_RESTORE_FORMATS, SOURCE_KIND

    backup = _kind(environment, step.backup, f"{where}.backup", ("backups",))
    if step.into:
        if backup.format not in LOGICAL_RESTORE_FORMATS:
            raise ValueError(f"{where}.into: {step.backup} is {backup.format}, restored into a data_dir, not a "
                             f"database")
        _kind(environment, step.into, f"{where}.into", (SOURCE_KIND[backup.format],))
    elif backup.format not in PHYSICAL_RESTORE_FORMATS:
        raise ValueError(f"{where}.data_dir: {step.backup} is {backup.format}, restored into a database target "
                         f"(into), not a data directory")
