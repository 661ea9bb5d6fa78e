"""The restore drill: latest backup -> fresh scratch database -> verified -> dropped, timed against the RTO.

The drill never raises past its clean-up: the scratch database is dropped in a ``finally`` (also
on a failed verification or an interrupt) and its absence confirmed. It returns the drill record
the readiness report reads: backup, target, times, RTO/RPO target vs achieved, every verification.
The achieved RPO is the age of the newest row in the tables given a ``timestamp`` column: the data a
restore now would lose. The achieved RTO runs from listing the backup to the last verification.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from opsproof.backups.scratch import RestoreFailed, endpoint, open_scratch
from opsproof.errors import ProbeError, first_line

COUNTS_SUFFIX = ".counts.json"  # row counts recorded when the backup was taken (the sandbox writes them)


def refusal(environment, backup, source_dsn: str | None) -> str | None:
    """Why the drill must not restore into ``backup.restore_into`` here, or None when it may."""
    into = backup.restore_into
    if environment.tier == "production":
        return (f"restore refused: environment {environment.name} is tier production; restore drills run "
                f"into a scratch target of a staging or sandbox environment")
    if not into.scratch:
        return f"restore refused: {backup.where} restore_into is not declared scratch: true"
    if source_dsn and endpoint(into.dsn) == endpoint(source_dsn):
        host, port, database = endpoint(into.dsn)
        return (f"restore refused: {backup.where} restore_into is the source {backup.of} itself "
                f"({host}:{port}/{database})")
    for kind in ("postgres", "mysql"):
        for target in (getattr(environment, kind, None) or {}).values():
            if endpoint(into.dsn) == endpoint(_dsn_of(target)):
                return (f"restore refused: {backup.where} restore_into is {target.where}, "
                        f"a target this environment checks")
    return None


def _dsn_of(target) -> str:
    """A comparable DSN for a PostgreSQL (``dsn``) or MySQL (host, port, database) target."""
    if getattr(target, "dsn", None):
        return target.dsn
    return f"mysql://{target.host}:{target.port}/{getattr(target, 'database', None) or ''}"


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


class Drill:
    """One restore drill of one backup set; ``run()`` returns the drill record."""

    def __init__(self, backup, location, password: str | None, now=None):
        self.backup, self.location, self.password = backup, location, password
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.verifications: list[dict] = []

    def verify(self, name: str, value, op: str, limit) -> bool:
        holds = {"<=": lambda: value <= limit, ">=": lambda: value >= limit, "==": lambda: value == limit}[op]()
        self.verifications.append({"name": name, "value": value, "op": op, "limit": limit,
                                   "verdict": "ok" if holds else "crit"})
        return holds

    def _recorded_counts(self, latest) -> dict[str, int]:
        sidecar = self.location.beside(latest.name + COUNTS_SUFFIX)
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
            self.verify(f"invariant.{name}", value, "<=", invariant.max)
        newest = None
        for table, expectation in self.backup.tables.items():
            if expectation.timestamp and table not in missing:
                stamp = scratch.newest(table, expectation.timestamp)
                if isinstance(stamp, datetime) and stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=timezone.utc)  # a DATETIME without zone: read as UTC
                if stamp is not None and (newest is None or stamp > newest):
                    newest = stamp
        return newest

    def run(self, on_record=None) -> dict:
        """Restore, verify, clean up; the record's outcome is "passed" only with cleanup confirmed."""
        backup, into = self.backup, self.backup.restore_into
        started_at, started = self.now(), time.monotonic()
        record = {"kind": "restore", "backup_set": backup.name, "backup_id": None, "backup_time": None,
                  "target": None, "started_at": _utc(started_at), "finished_at": None,
                  "rto_target_s": backup.rto, "rto_achieved_s": None,
                  "rpo_target_s": backup.rpo, "rpo_achieved_s": None,
                  "verifications": self.verifications, "cleanup_confirmed": False, "outcome": "failed"}
        host, port, database = endpoint(into.dsn)
        record["target"] = f"{host}:{port}/{database}"
        files = self.location.files()
        if not files:
            raise ProbeError(f"no backup matches {self.location.describe()}")
        latest = files[-1]
        record.update(backup_id=latest.name, backup_time=_utc(latest.modified_at))
        scratch = open_scratch(into.dsn, self.password, into.timeout_s)
        fetch_dir = Path(tempfile.mkdtemp(prefix="opsproof-drill-"))
        try:
            fetched = self.location.fetch(latest, fetch_dir)
            scratch.create()
            try:
                scratch.restore(fetched, backup.format)
                self.verify("restore_error", "none", "==", "none")
            except RestoreFailed as error:
                self.verify("restore_error", str(error), "==", "none")
            else:
                newest = self._check_data(scratch, latest)
                if newest is not None:
                    record["rpo_achieved_s"] = round((self.now() - newest).total_seconds(), 1)
                    self.verify("rpo_achieved_s", record["rpo_achieved_s"], "<=", backup.rpo)
            record["rto_achieved_s"] = round(time.monotonic() - started, 3)
            self.verify("rto_achieved_s", record["rto_achieved_s"], "<=", backup.rto)
            record["outcome"] = "passed" if all(v["verdict"] == "ok" for v in self.verifications) else "failed"
        except BaseException as error:
            record["outcome"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            record["error"] = first_line(error)
            raise
        finally:
            record["cleanup_confirmed"] = self._clean_up(scratch)
            record["finished_at"] = _utc(self.now())
            shutil.rmtree(fetch_dir, ignore_errors=True)  # our own folder: a local backup is read in place
            if record["outcome"] == "passed" and not record["cleanup_confirmed"]:
                record["outcome"] = "failed"
            if on_record is not None:
                on_record(record)  # a drill that raised still leaves its record for the readiness report
        return record

    def _clean_up(self, scratch) -> bool:
        """Drop the scratch database and confirm it is gone; False when either could not be done."""
        try:
            scratch.drop()
            return not scratch.exists()
        except Exception:  # noqa: BLE001 - the record says cleanup was not confirmed
            return False
