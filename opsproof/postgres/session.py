"""One PostgreSQL session per target: read-only outside the sandbox, every wait bounded."""

from __future__ import annotations

import os
import socket
import threading
import time

from opsproof.errors import ProbeError, first_line


class PostgresSession:
    def __init__(
        self,
        dsn: str,
        password: str | None = None,
        connect_timeout_s: float = 3.0,
        statement_timeout_ms: int = 5000,
        read_only: bool = True,
    ):
        self._dsn = dsn
        self._password = password
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.read_only = read_only
        self._conn = None

    def _connection(self):
        if self._conn is None:
            import psycopg  # imported lazily: ~200 ms, only when an environment has PostgreSQL targets

            options = f"-c statement_timeout={self.statement_timeout_ms}"
            if self.read_only:
                options += " -c default_transaction_read_only=on"
            kwargs = {
                # libpq counts whole seconds, at least 2
                "connect_timeout": max(2, round(self.connect_timeout_s)),
                "options": options,
                "autocommit": True,
                "application_name": "opsproof",
            }
            if self._password is not None:
                kwargs["password"] = self._password
            try:
                self._conn = psycopg.connect(self._dsn, **kwargs)
            except psycopg.Error as exc:
                raise ProbeError(f"connect: {first_line(exc)}", unreachable=True) from None
        return self._conn

    def connect(self) -> float:
        """Open the session (if not open); milliseconds it took."""
        started = time.perf_counter()
        self._connection()
        return (time.perf_counter() - started) * 1000

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
        import psycopg

        conn = self._connection()
        deadline_s = self.statement_timeout_ms / 1000 + self.connect_timeout_s
        guard = _Deadline(conn, deadline_s)
        try:
            with guard, conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            if guard.fired:
                self.close()
                raise ProbeError(f"no answer within {deadline_s:g} s", unreachable=True) from None
            lost = conn.closed or conn.broken
            if lost:
                self._conn = None
            if label is not None:
                raise ProbeError(f"{label}: {type(exc).__name__} (SQLSTATE {exc.sqlstate})", unreachable=lost) from None
            raise ProbeError(first_line(exc), unreachable=lost) from None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


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
