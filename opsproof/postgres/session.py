"""One PostgreSQL session per target: read-only outside the sandbox, every wait bounded.

``default_transaction_read_only`` is only a default the client may change (``SET``, ``BEGIN READ
WRITE``, ``set_config``). So every statement goes through the extended protocol, which takes one
statement per call, and a read-only session runs it inside ``BEGIN READ ONLY`` that is always rolled
back, then ``DISCARD ALL``: nothing it set, locked or prepared reaches the next statement. What a
read-only transaction cannot block is a role's privileges; those are read once per connection
(``opsproof.postgres.roles``) and refused on production tiers.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time

from opsproof.errors import ProbeError, first_line
from opsproof.monitoring_role import MonitoringRole


class PostgresSession:
    def __init__(
        self,
        dsn: str,
        password: str | None = None,
        connect_timeout_s: float = 3.0,
        statement_timeout_ms: int = 5000,
        read_only: bool = True,
        refuse_privileged_role: bool = True,
    ):
        self._dsn = dsn
        self._password = password
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.read_only = read_only
        self.refuse_privileged_role = refuse_privileged_role  # production tiers; others warn
        self._conn = None
        self._role: MonitoringRole | None = None
        self._refusal: str | None = None

    def _connection(self):
        if self._refusal:
            raise ProbeError(self._refusal, unreachable=True)
        if self._conn is None:
            conn = self._open()
            if self.read_only:
                from opsproof.postgres.roles import ROLE_SQL, role_of

                try:
                    self._role = role_of(self._query(conn, ROLE_SQL, None, "monitoring role"))
                    if self.refuse_privileged_role and self._role.refusal():
                        self._refusal = self._role.refusal()
                        raise ProbeError(self._refusal, unreachable=True)
                except ProbeError:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    def _open(self):
        import psycopg  # imported lazily: ~200 ms, only when an environment has PostgreSQL targets

        options = f"-c statement_timeout={self.statement_timeout_ms}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"  # a second line: every statement has its own
        kwargs = {
            # libpq counts whole seconds, at least 2
            "connect_timeout": max(2, round(self.connect_timeout_s)),
            "options": options,
            "autocommit": True,
            "prepare_threshold": None,  # no named server-side statements for DISCARD ALL to drop
            "application_name": "opsproof",
        }
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            return psycopg.connect(self._dsn, **kwargs)
        except psycopg.Error as exc:
            raise ProbeError(f"connect: {first_line(exc)}", unreachable=True) from None

    def monitoring_role(self) -> MonitoringRole | None:
        """The session's role and what it holds beyond reading; None for a read-write (sandbox) session."""
        self._connection()
        return self._role

    def ping_ms(self) -> float:
        started = time.perf_counter()
        self.rows("SELECT 1")
        return (time.perf_counter() - started) * 1000

    def server_version(self) -> str:
        return self.rows("SHOW server_version")[0][0].split(" ")[0]

    def scalar(self, sql: str, params=None, label: str | None = None):
        rows = self.rows(sql, params, label)
        if not rows or len(rows[0]) != 1:
            raise ProbeError(f"{label + ': ' if label else ''}expected one value, got {len(rows)} row(s)")
        return rows[0][0]

    def rows(self, sql: str, params=None, label: str | None = None) -> list[tuple]:
        """Run one statement; the server's statement_timeout and a client-side deadline both bound it.

        With a ``label`` (a configured query's name) an error says the label and the error class
        only: the server's text can quote the SQL, which may hold what should not be shown.
        """
        return self._query(self._connection(), sql, params, label)

    def _query(self, conn, sql: str, params, label: str | None) -> list[tuple]:
        import psycopg

        if self.read_only and _first_words(sql, 2) == ["PREPARE", "TRANSACTION"]:
            # it would keep the transaction, and the xid it takes, on the server after the rollback
            raise ProbeError(f"{label + ': ' if label else ''}PREPARE TRANSACTION refused: it outlives the session")
        deadline_s = self.statement_timeout_ms / 1000 + self.connect_timeout_s
        guard = _Deadline(conn, deadline_s)
        with guard:
            try:
                return self._run(conn, sql, params)
            except psycopg.Error as exc:
                error, lost = exc, conn.closed or conn.broken
                usable = not lost and not guard.fired and self._recover(conn)
        if not usable:
            self._drop(conn)
        if guard.fired:
            raise ProbeError(f"no answer within {deadline_s:g} s", unreachable=True) from None
        if label is not None:
            raise ProbeError(f"{label}: {type(error).__name__} (SQLSTATE {error.sqlstate})", unreachable=lost) from None
        raise ProbeError(first_line(error), unreachable=lost) from None

    def _run(self, conn, sql: str, params) -> list[tuple]:
        """One statement through the extended protocol (a pipeline always uses it), one network round trip.

        Read-only: ``BEGIN READ ONLY``, the statement, ``ROLLBACK``, ``DISCARD ALL`` (the first statement
        of the implicit transaction after the rollback, which it may be). A failed statement stops the
        pipeline: ``_recover`` rolls back and discards.
        """
        cursor = conn.cursor()
        with conn.pipeline():
            if self.read_only:
                conn.execute("BEGIN READ ONLY")
            cursor.execute(sql, params)
            if self.read_only:
                conn.execute("ROLLBACK")
                conn.execute("DISCARD ALL")
        return cursor.fetchall() if cursor.description else []

    def _recover(self, conn) -> bool:
        """After a failed statement, whether the session is clean again: a read-only one is rolled back
        and reset (the pipeline stopped at the error). A session left mid-COPY, or whose reset failed,
        is not: it is closed and the next statement opens a new one."""
        import psycopg

        if not _settled(conn):
            return False
        if self.read_only:
            try:
                conn.execute("ROLLBACK")
                conn.execute("DISCARD ALL")
            except psycopg.Error:
                return False
        return True

    def _drop(self, conn) -> None:
        try:
            conn.close()
        finally:
            if self._conn is conn:
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._drop(self._conn)


def _first_words(sql: str, count: int) -> list[str]:
    """The first words of a statement, past whitespace and comments (``--`` lines, nested ``/* */``)."""
    words, i = [], 0
    while len(words) < count and i < len(sql):
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            i = sql.find("\n", i) + 1 or len(sql)
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while depth and i < len(sql):
                pair = sql[i:i + 2]
                if pair in ("/*", "*/"):
                    depth += 1 if pair == "/*" else -1
                    i += 2
                else:
                    i += 1
        else:
            word = re.match(r"\w+", sql[i:])
            if not word:
                break
            words.append(word.group().upper())
            i += word.end()
    return words


def _settled(conn) -> bool:
    """The session waits for a command (idle, in a transaction or an aborted one), not mid-COPY or lost."""
    from psycopg.pq import TransactionStatus

    return not (conn.closed or conn.broken) and conn.info.transaction_status in (
        TransactionStatus.IDLE, TransactionStatus.INTRANS, TransactionStatus.INERROR)


class _Deadline:
    """Shuts the session's socket down when a server stops answering mid-statement."""

    def __init__(self, conn, seconds: float):
        self._conn, self._seconds = conn, seconds
        self._timer: threading.Timer | None = None
        self.fired = False

    def _fire(self) -> None:
        self.fired = True
        try:
            sock = socket.socket(fileno=os.dup(self._conn.pgconn.socket))
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        except OSError:
            pass

    def __enter__(self):
        self._timer = threading.Timer(self._seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()
        return False
