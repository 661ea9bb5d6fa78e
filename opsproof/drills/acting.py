"""The DR drill's acting sessions: the ``promote`` step, the RPO marker and timestamp, the invariants.

These are not the checks' sessions. A check's session is read-only outside the sandbox tier, one
statement at a time, and refuses a privileged role on production (opsproof.postgres.session). A DR
drill must act: promote a replica (superuser or EXECUTE on ``pg_promote()``; MariaDB's ``STOP REPLICA``
needs ``REPLICATION SLAVE ADMIN`` or SUPER), write a marker row. So it opens its own connections here,
read-write only where a step acts and read-only (``BEGIN READ ONLY``) where it measures, and only for a
drill that ran with ``--allow-destructive --confirm-drill <scenario>``, on targets its scenario lists in
``acts_on``; on a production tier only on a declared game day with its approver (checked at load).
Every statement is bounded by the step's remaining time.

>>> promote_step(step, context)(time.monotonic() + 30)   # doctest: +SKIP
'postgres.standby promoted: out of recovery after 0.41 s'
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone

from opsproof.drills.runner import StepFailed
from opsproof.errors import first_line


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def _left(deadline: float | None, cap: float = 3600.0) -> float:
    return cap if deadline is None else max(0.5, min(cap, deadline - time.monotonic()))


@contextmanager
def session(target, deadline: float | None = None):
    """An autocommit connection to a postgres or mysql target, its statements bounded by the deadline."""
    seconds = _left(deadline)
    if target.kind == "postgres":
        import psycopg

        try:
            conn = psycopg.connect(target.dsn, password=_secret(target.password), autocommit=True,
                                   connect_timeout=max(1, int(min(target.connect_timeout_s, seconds))),
                                   application_name="opsproof-dr-drill")
        except psycopg.Error as error:
            raise StepFailed(f"{target.where}: connect: {first_line(error)}") from None
        try:
            conn.execute(f"SET statement_timeout = {int(seconds * 1000)}")
            yield _Postgres(conn)
        except psycopg.Error as error:
            raise StepFailed(f"{target.where}: {type(error).__name__}: {first_line(error)}") from None
        finally:
            conn.close()
    else:
        import pymysql

        try:
            conn = pymysql.connect(host=target.host, port=target.port, user=target.user,
                                   password=_secret(target.password) or "", database=target.database,
                                   connect_timeout=max(1, int(min(target.connect_timeout_s, seconds))),
                                   read_timeout=int(seconds) + 1, write_timeout=int(seconds) + 1, autocommit=True)
        except pymysql.MySQLError as error:
            raise StepFailed(f"{target.where}: connect: {first_line(error)}") from None
        try:
            yield _Mysql(conn)
        except pymysql.MySQLError as error:
            raise StepFailed(f"{target.where}: {type(error).__name__}: {first_line(error)}") from None
        finally:
            conn.close()


class _Postgres:
    kind = "postgres"

    def __init__(self, conn):
        self.conn = conn

    def rows(self, sql: str, params=None) -> list[tuple]:
        cursor = self.conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def read(self, sql: str, params=None) -> list[tuple]:
        """One query in a read-only transaction, rolled back."""
        with self.conn.transaction(force_rollback=True):
            self.conn.execute("SET TRANSACTION READ ONLY")
            return self.rows(sql, params)


class _Mysql:
    kind = "mysql"

    def __init__(self, conn):
        self.conn = conn

    def rows(self, sql: str, params=None) -> list[tuple]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def read(self, sql: str, params=None) -> list[tuple]:
        self.rows("START TRANSACTION READ ONLY")
        try:
            return self.rows(sql, params)
        finally:
            self.conn.rollback()


def promote_step(step, context):
    """``promote``: a PostgreSQL replica through ``pg_promote()``, waiting until it is out of recovery; a MariaDB
    or MySQL replica by ``STOP REPLICA; RESET REPLICA ALL; SET GLOBAL read_only = OFF``."""
    target = context.target(step.target)

    def do(deadline: float | None) -> str:
        started = time.monotonic()
        with session(target, deadline) as db:
            if db.kind == "postgres":
                _promote_postgres(db, target, deadline)
                became = "out of recovery"
            else:
                _promote_mysql(db, target)
                became = "replication reset, read_only off"
        return f"{target.where} promoted: {became} after {time.monotonic() - started:.2f} s"

    return do


def _promote_postgres(db: _Postgres, target, deadline: float | None) -> None:
    if not db.rows("SELECT pg_is_in_recovery()")[0][0]:
        raise StepFailed(f"{target.where} is not in recovery: there is no replica to promote")
    db.rows("SELECT pg_promote(wait => false)")
    while db.rows("SELECT pg_is_in_recovery()")[0][0]:
        if deadline is not None and time.monotonic() >= deadline:
            raise StepFailed(f"{target.where} still in recovery when the step's timeout ran out")
        time.sleep(0.05)


def _promote_mysql(db: _Mysql, target) -> None:
    if not db.rows("SHOW REPLICA STATUS"):
        raise StepFailed(f"{target.where} is not a replica: SHOW REPLICA STATUS is empty")
    for statement in ("STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL read_only = OFF"):
        db.rows(statement)
    if db.rows("SELECT @@global.read_only")[0][0]:
        raise StepFailed(f"{target.where} is still read_only")


def write_marker(target, table: str, marker: str, scenario: str, deadline: float | None) -> str:
    """Non-production: one row just before the outage (the table is created when missing); returns its time."""
    with session(target, deadline) as db:
        if db.kind == "postgres":
            db.rows(f"CREATE TABLE IF NOT EXISTS {table} (marker text PRIMARY KEY, scenario text NOT NULL, "
                    f"written_at timestamptz NOT NULL DEFAULT now())")
            row = db.rows(f"INSERT INTO {table} (marker, scenario) VALUES (%s, %s) RETURNING written_at",
                          (marker, scenario))
        else:
            db.rows(f"CREATE TABLE IF NOT EXISTS {table} (marker VARCHAR(80) PRIMARY KEY, scenario VARCHAR(255) "
                    f"NOT NULL, written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")
            db.rows(f"INSERT INTO {table} (marker, scenario) VALUES (%s, %s)", (marker, scenario))
            row = db.rows(f"SELECT written_at FROM {table} WHERE marker = %s", (marker,))
    return _utc(row[0][0]).isoformat()


def find_marker(target, table: str, marker: str, deadline: float | None) -> bool:
    """Whether the marker row is on ``target`` after recovery (a missing table is a lost marker too)."""
    with session(target, deadline) as db:
        exists = ("SELECT to_regclass(%s) IS NOT NULL" if db.kind == "postgres" else
                  "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s")
        if not db.read(exists, (table,))[0][0]:
            return False
        return bool(db.read(f"SELECT count(*) FROM {table} WHERE marker = %s", (marker,))[0][0])


def newest(target, sql: str, deadline: float | None) -> datetime | None:
    """The timestamp ``sql`` returns (the newest row), read-only; a DATETIME without zone is read as UTC."""
    with session(target, deadline) as db:
        rows = db.read(sql)
    value = rows[0][0] if rows and rows[0] else None
    if value is not None and not isinstance(value, datetime):
        raise StepFailed(f"{target.where}: the RPO query returned {type(value).__name__}, not a timestamp")
    return _utc(value) if value is not None else None


def number(target, sql: str, deadline: float | None) -> int | float | None:
    """The one number an invariant query returns, read-only (a count stays an integer)."""
    from opsproof.errors import ProbeError
    from opsproof.postgres.probe import number as plain

    with session(target, deadline) as db:
        rows = db.read(sql)
    value = rows[0][0] if rows and rows[0] else None
    try:
        return None if value is None else plain(value, f"{target.where}: the invariant")
    except ProbeError as error:
        raise StepFailed(str(error)) from None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
