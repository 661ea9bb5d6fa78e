"""The DR drill: a scenario's steps on the generic runner, then verification, RTO and RPO, and always its rollback.

The record's steps, in order: the scenario's steps before the outage; ``measure_rpo_before`` (the marker
row written, the source's newest row read) just before the outage step (``outage_starts_at``, else the
first); the outage and recovery steps; ``verify`` (the checks and invariants that prove recovery);
``measure_rpo_after``. RTO runs from the start of the outage step to the end of a passing ``verify``.
RPO is the source's newest row before the outage minus the recovered target's after it, or 0 when the
marker is found there; a lost marker is itself the evidence of data loss and fails the drill. The
rollback runs after, whatever happened (opsproof.drills.runner). Refusals that need the command line
(``--confirm-drill``) are the fixture's (fixtures/dr.py); the file's own rules were checked when it loaded.

>>> DrDrill(scenario, environment).run(env_file, "alice (--allow-destructive ...)").rto_achieved_s  # doctest: +SKIP
4.2
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

from opsproof.drills.context import STEP_TYPES, DrillContext
from opsproof.drills.runner import Action, StepFailed, run
from opsproof.errors import ConfigError, ProbeError, first_line
from opsproof.record import DrillRecord, Measurement
from opsproof.record.drill import utc_now

MEASURE_TIMEOUT_S = 60.0  # the drill's own RPO reads and writes


def action(step, context: DrillContext) -> Action:
    """The runner's action for one scenario step: its type's implementation, found by name."""
    from opsproof.probes import factory

    acted = step.acts_on() or step.targets or ([step.data_dir] if step.data_dir else [])
    do = factory(STEP_TYPES[step.type])(step, context)
    return Action(step.name, do, step.timeout, step.type, ", ".join(acted) or "local")


class DrDrill:
    """One scenario; ``run()`` returns its drill record (opened by opsproof.probes for ``dr`` targets)."""

    def __init__(self, scenario, environment):
        self.scenario, self.environment = scenario, environment

    def run(self, env_file: Path | None = None, confirmed_by: str | None = None, on_record=None) -> DrillRecord:
        s = self.scenario
        record = DrillRecord(kind="dr", scenario=s.name, systems=list(s.acts_on), target=", ".join(s.acts_on),
                             started_at=utc_now(), rto_target_s=s.rto, rpo_target_s=s.rpo, game_day=s.game_day,
                             approver=s.approver, confirmed_by=confirmed_by)
        context = DrillContext(s, self.environment, Path(env_file) if env_file else None, record=record)
        measures = _Measures(s, context, record)
        try:
            steps = measures.around([action(step, context) for step in s.steps])
            rollback = [action(step, context) for step in s.rollback]
            return run(record, steps, rollback, conclude=measures.conclude, on_record=on_record)
        except (KeyboardInterrupt, ProbeError):
            raise
        except Exception as error:  # noqa: BLE001 - cached as "could not measure": the drill never runs twice
            raise ProbeError(f"the drill stopped at {record.failed_step or 'its start'}: "
                             f"{type(error).__name__}: {first_line(error)}") from error
        finally:
            record.cleanup_left.extend(f"not closed: {problem}" for problem in context.close())

    def close(self) -> None:
        """Nothing stays open between drills (each closes its own connections)."""


class _Measures:
    """What the drill measures around the scenario's steps: the outage start, verification, the RPO."""

    def __init__(self, scenario, context: DrillContext, record: DrillRecord):
        self.scenario, self.context, self.record = scenario, context, record
        self.outage_began: float | None = None
        self.verified_at: float | None = None
        self.marker = f"{scenario.name}-{uuid.uuid4().hex[:12]}"
        self.marker_found: bool | None = None
        self.marker_written_at: str | None = None

    def around(self, steps: list[Action]) -> list[Action]:
        """The scenario's steps with the RPO reads, the outage start, and the verification put in place."""
        names = [a.name for a in steps]
        at = names.index(self.scenario.outage_starts_at) if self.scenario.outage_starts_at else 0
        outage = steps[at]
        began = replace(outage, do=self._starting(outage.do))
        rpo = self.scenario.rpo_measure
        before = [Action("measure_rpo_before", self.before, MEASURE_TIMEOUT_S, "measure")] if rpo else []
        after = [Action("measure_rpo_after", self.after, MEASURE_TIMEOUT_S, "measure")] if rpo else []
        verify = Action("verify", self.verify, self.scenario.verify.timeout, "verify")
        return [*steps[:at], *before, began, *steps[at + 1:], verify, *after]

    def _starting(self, do):
        def outage(deadline):
            self.outage_began, self.record.outage_started_at = time.monotonic(), utc_now()
            return do(deadline)
        return outage

    # --- RPO ----------------------------------------------------------------------------------------
    def before(self, deadline) -> str:
        from opsproof.drills.acting import newest, write_marker

        rpo, said = self.scenario.rpo_measure, []
        if rpo.timestamp:
            found = newest(self.context.target(rpo.timestamp.source), rpo.timestamp.sql, deadline)
            self.record.newest_data_before = found.isoformat() if found else None
            said.append(f"newest row on {rpo.timestamp.source}: {self.record.newest_data_before or 'none'}")
        if rpo.marker:
            target = self.context.target(rpo.marker.write)
            self.marker_written_at = write_marker(target, rpo.marker.table, self.marker, self.scenario.name, deadline)
            said.append(f"marker {self.marker} written to {target.where} at {self.marker_written_at}")
        return "; ".join(said)

    def after(self, deadline) -> str:
        from opsproof.drills.acting import find_marker, newest

        rpo, said = self.scenario.rpo_measure, []
        if rpo.marker:
            self.marker_found = find_marker(self.context.target(rpo.marker.read), rpo.marker.table, self.marker,
                                            deadline)
            said.append(f"marker {self.marker} {'found' if self.marker_found else 'lost'} on {rpo.marker.read}")
        if rpo.timestamp:
            found = newest(self.context.target(rpo.timestamp.recovered), rpo.timestamp.sql, deadline)
            self.record.newest_data_after = found.isoformat() if found else None
            said.append(f"newest row on {rpo.timestamp.recovered}: {self.record.newest_data_after or 'none'}")
        return "; ".join(said)

    def _rpo_achieved(self) -> float | None:
        """Newest row before minus newest after (0 when there was none to lose); else 0 when the marker survived."""
        from datetime import datetime

        if not self.scenario.rpo_measure.timestamp:
            return 0.0 if self.marker_found else None
        before, after = self.record.newest_data_before, self.record.newest_data_after
        if before is None and self.verified_at is not None:
            return 0.0
        if before is None or after is None:
            return None
        return round(max(0.0, (datetime.fromisoformat(before) - datetime.fromisoformat(after)).total_seconds()), 3)

    # --- verification -------------------------------------------------------------------------------
    def verify(self, deadline) -> str:
        verify = self.scenario.verify
        env_file = self.scenario.dr_site(self.context.env_file) or self.context.env_file
        environment = self._environment(env_file)
        measured: list[Measurement] = []
        said = []
        if verify.runs_checks:
            from opsproof.drills.checks import run_checks

            found = run_checks(env_file, deadline, suite=verify.suite, targets=verify.targets, checks=verify.checks)
            if found.problem:
                measured.append(Measurement.compared("checks_run", found.problem, "==", "ok"))
            measured.append(Measurement.compared("failed_checks", found.failed, "==", {}, passed=found.passed,
                                                 skipped=found.skipped))
            said.append(f"checks: {found.passed} passed, {found.skipped} skipped, {len(found.failed)} failed")
        for name, invariant in verify.invariants.items():
            from opsproof.drills.acting import number

            kind, _, target_name = invariant.target.partition(".")
            value = number(environment.targets(kind)[target_name], invariant.sql, deadline)
            measured += [Measurement.compared(f"invariant.{name}", value, op, limit, target=invariant.target)
                         for op, limit in invariant.bounds]
        said.append(f"{len(verify.invariants)} invariants")
        self.record.verifications.extend(measured)
        failed = [m.measure for m in measured if not m.ok]
        if failed:
            raise StepFailed(f"not verified: {', '.join(failed)}")
        self.verified_at = time.monotonic()
        return "verified: " + ", ".join(said)

    def _environment(self, env_file):
        """This environment, or the DR site's (its own ${VAR}s resolved now)."""
        if not self.scenario.verify.environment:
            return self.context.environment
        from opsproof.environment import load_environment

        try:
            return load_environment(Path(env_file)).environment
        except ConfigError as error:
            raise StepFailed(f"verify.environment: {error}") from None

    # --- after the steps ----------------------------------------------------------------------------
    def conclude(self) -> None:
        """RTO and RPO, judged into the record's verifications (also when a step failed: not achieved)."""
        record, scenario = self.record, self.scenario
        if self.outage_began is not None and self.verified_at is not None:
            record.rto_achieved_s = round(self.verified_at - self.outage_began, 3)
        record.verifications.append(Measurement.compared("rto_achieved_s", record.rto_achieved_s, "<=", scenario.rto))
        if scenario.rpo_measure is None:
            return
        if scenario.rpo_measure.marker:
            state = None if self.marker_found is None else ("found" if self.marker_found else "lost")
            record.verifications.append(Measurement.compared(
                "rpo_marker", state, "==", "found", marker=self.marker, written_to=scenario.rpo_measure.marker.write,
                written_at=self.marker_written_at, read_on=scenario.rpo_measure.marker.read))
        record.rpo_achieved_s = self._rpo_achieved()
        record.verifications.append(Measurement.compared("rpo_achieved_s", record.rpo_achieved_s, "<=", scenario.rpo))
