"""The restore drill: latest backup -> fresh scratch target -> verified -> removed, timed against the RTO.

The scratch target is a database for logical dumps, a data directory with a throwaway server for
pgBackRest and pg_basebackup (opsproof.backups.cluster). The drill never raises past its clean-up:
the target is removed in a ``finally`` (also on a failed verification or an interrupt) and its
absence confirmed. It returns the drill record (opsproof.record.DrillRecord) the readiness report
reads: backup, target, timed steps, RTO/RPO target vs achieved, every verification as a measurement.
The achieved RPO is the age of the newest row in the tables given a ``timestamp`` column: the data a
restore now would lose. The achieved RTO runs from listing the backup to the last verification.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from opsproof.backups.scratch import RestoreFailed, describe, open_scratch
from opsproof.drills.runner import Action, StepFailed
from opsproof.drills.runner import run as run_steps
from opsproof.errors import ProbeError, first_line
from opsproof.processes import owned_tempdir
from opsproof.record import DrillRecord, Measurement

COUNTS_SUFFIX = ".counts.json"  # row counts recorded when the backup was taken (the sandbox writes them)


def refusal(environment, backup) -> str | None:
    """Why the drill must not restore into ``backup.restore_into`` here, or None when it may.

    A database target is compared by identity with the source and every other database target of the
    environment (opsproof.backups.identity); a data directory by device and inode with what a physical drill
    must never touch (opsproof.backups.datadir).
    """
    into = backup.restore_into
    if environment.tier == "production":
        return (f"restore refused: environment {environment.name} is tier production; restore drills run "
                f"into a scratch target of a staging or sandbox environment")
    if not into.scratch:
        return f"restore refused: {backup.where} restore_into is not declared scratch: true"
    if into.data_dir:
        from opsproof.backups.datadir import data_dir_refusal

        return data_dir_refusal(environment, backup)
    from opsproof.backups.identity import database_refusal

    return database_refusal(environment, backup)


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


class LogicalRestore:
    """The restore step of a logical drill: the latest dump fetched and restored into a fresh scratch
    database, which ``clean_up`` drops (True once it is confirmed gone)."""

    def __init__(self, backup, location, password: str | None):
        into = backup.restore_into
        self.backup, self.location = backup, location
        self.scratch = open_scratch(into.dsn, password, into.timeout_s)
        self.target = describe(into.dsn)
        self.fetch_dir: Path | None = None

    def latest(self):
        files = self.location.files()
        if not files:
            raise ProbeError(f"no backup matches {self.location.describe()}")
        return files[-1]

    def restore(self, latest):
        self.fetch_dir = owned_tempdir("opsproof-drill-")  # a killed run's is removed by the next one
        fetched = self.location.fetch(latest, self.fetch_dir)
        self.scratch.create()
        self.scratch.restore(fetched, self.backup.format)
        return self.scratch

    def clean_up(self) -> bool:
        try:
            self.scratch.drop()
            return not self.scratch.exists()
        finally:
            self.remove_fetched()

    def remove_fetched(self) -> None:
        """Remove the fetch folder (our own: a local backup is read in place) and close the session."""
        if self.fetch_dir is not None:
            shutil.rmtree(self.fetch_dir, ignore_errors=True)
            self.fetch_dir = None
        if hasattr(self.scratch, "close"):
            self.scratch.close()


def restore_step(backup, location, password: str | None, source_dsn: str | None = None):
    """Logical formats restore into restore_into.dsn; pgbackrest and pg_basebackup into restore_into.data_dir."""
    if backup.restore_into.data_dir:
        from opsproof.backups.cluster import PhysicalRestore

        return PhysicalRestore(backup, location, source_dsn)
    return LogicalRestore(backup, location, password)


class Drill:
    """One restore drill of one backup set; ``run()`` returns the drill record.

    The restore step (``restore_step``) says which backup is the latest, restores it into a scratch
    target and returns something to query (table_exists, row_count, newest, query); ``clean_up``
    removes that target. The verification and the record are the same for every format.
    """

    def __init__(self, backup, location, password: str | None, now=None, step=None, source_dsn: str | None = None):
        self.backup, self.location, self.password = backup, location, password
        self.step = step or restore_step(backup, location, password, source_dsn)
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.verifications: list[Measurement] = []
        self.latest = None  # the backup found, then what it was restored into (filled by the steps)
        self.scratch = None

    def verify(self, name: str, value, op: str, limit) -> bool:
        self.verifications.append(Measurement.compared(name, value, op, limit))
        return self.verifications[-1].ok

    def _recorded_counts(self, latest) -> dict[str, int]:
        sidecar = self.location.beside(latest.name + COUNTS_SUFFIX) if self.location is not None else None
        if sidecar is None:
            return {}
        try:
            return {str(k): int(v) for k, v in json.loads(self.location.read_bytes(sidecar))["tables"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProbeError(f"{sidecar.name} is not a row-count sidecar ({{\"tables\": {{name: rows}}}})") from None

    def _check_data(self, scratch, latest) -> datetime | None:
        recorded = self._recorded_counts(latest)
        tables = dict.fromkeys([*self.backup.tables, *recorded])
        missing = [t for t in tables if not scratch.table_exists(t)]
        self.verify("tables_missing", missing, "==", [])
        tolerance = self.backup.row_count_tolerance_pct / 100
        for table in tables:
            if table in missing:
                continue
            expectation = self.backup.tables.get(table)
            if table in recorded:
                floor = math.ceil(recorded[table] * (1 - tolerance))
            else:
                floor = expectation.min_rows
            self.verify(f"rows.{table}", scratch.row_count(table), ">=", floor)
        for name, invariant in self.backup.invariants.items():
            rows = scratch.query(invariant.sql)
            value = rows[0][0] if rows and rows[0] else None
            value = float(value) if value is not None else 0.0
            for op, limit in invariant.bounds:
                self.verify(f"invariant.{name}", value, op, limit)
        newest = None
        for table, expectation in self.backup.tables.items():
            if expectation.timestamp and table not in missing:
                stamp = scratch.newest(table, expectation.timestamp)
                if isinstance(stamp, datetime) and stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=timezone.utc)  # a DATETIME without zone: read as UTC
                if stamp is not None and (newest is None or stamp > newest):
                    newest = stamp
        return newest

    def run(self, on_record=None) -> DrillRecord:
        """Find the latest, restore, verify, then always clean up: steps on the generic runner
        (opsproof.drills.runner). "passed" only when every verification held and cleanup is confirmed;
        ``on_record(record)`` gets the record even when the drill raised."""
        backup, step = self.backup, self.step
        started = time.monotonic()
        record = DrillRecord(kind="restore", backup_set=backup.name, target=step.target, started_at=_utc(self.now()),
                             rto_target_s=backup.rto, rpo_target_s=backup.rpo, systems=[backup.of])
        record.verifications = self.verifications  # the same list, filled as the drill verifies

        def find_latest(deadline):
            self.latest = step.latest()
            record.backup_id, record.backup_time = self.latest.name, _utc(self.latest.modified_at)
            return self.latest.name

        def restore(deadline):
            try:
                self.scratch = step.restore(self.latest)
            except RestoreFailed as error:
                self.verify("restore_error", str(error), "==", "none")
                raise StepFailed(first_line(error)) from None
            self.verify("restore_error", "none", "==", "none")

        def verify(deadline):
            newest = self._check_data(self.scratch, self.latest)
            if newest is not None:
                record.rpo_achieved_s = round((self.now() - newest).total_seconds(), 1)
                self.verify("rpo_achieved_s", record.rpo_achieved_s, "<=", backup.rpo)
            failed = [v.measure for v in self.verifications if not v.ok]
            if failed:
                raise StepFailed(f"{len(self.verifications)} verifications, failed: {', '.join(failed)}")
            return f"{len(self.verifications)} verifications, failed: none"

        def rto():
            record.rto_achieved_s = round(time.monotonic() - started, 3)
            self.verify("rto_achieved_s", record.rto_achieved_s, "<=", backup.rto)

        def clean_up(deadline):
            record.cleanup_confirmed = self._clean_up()
            for key in ("previous_leftovers", "cleanup_left"):  # what a killed drill left; what this one left
                getattr(record, key).extend(getattr(step, key, None) or [])
            if not record.cleanup_confirmed:
                raise StepFailed(f"{step.target} not confirmed removed")

        steps = [Action("find_latest", find_latest), Action("restore", restore), Action("verify", verify)]
        run_steps(record, steps, [Action("clean_up", clean_up)], closing_into=record.steps, conclude=rto,
                  on_record=lambda done: self._finished(done, on_record))
        return record

    def _finished(self, record: DrillRecord, on_record) -> None:
        record.finished_at = _utc(self.now())
        if on_record is not None:
            on_record(record)

    def _clean_up(self) -> bool:
        """The step removes its scratch target and confirms it is gone; False when it could not."""
        try:
            return self.step.clean_up()
        except Exception:  # noqa: BLE001 - the record says cleanup was not confirmed
            return False
