"""MySQL / MariaDB probe (PyMySQL): one session per target, read-only outside the sandbox, every wait bounded.

>>> db = MysqlProbe("db", 3306, "monitor", password=None, database="app", read_only=True)   # doctest: +SKIP
>>> db.server_version(), db.connections()                                                  # doctest: +SKIP
('10.11.6-MariaDB', (7, 151))
>>> db.long_running(older_than_s=300)                                                      # doctest: +SKIP
[{'id': 812, 'user': 'app', 'db': 'app', 'command': 'Query', 'state': 'User sleep', 'age_s': 912}]
>>> db.replica_status()                   # None on a server that replicates from nothing  # doctest: +SKIP
{'io_running': 'Yes', 'sql_running': 'Yes', 'lag_s': 0, 'last_error': ''}

A read-only session runs each statement as: ``SET SESSION`` timeout and ``TRANSACTION READ ONLY``,
``START TRANSACTION READ ONLY``, the statement, then COM_RESET_CONNECTION. Both read-only settings are
needed: DDL commits the transaction implicitly and then runs under the session's setting, and a
stored procedure may set the session read-write and then write, which only the transaction's setting
stops. The reset rolls back and drops what the statement left (session variables, temporary tables,
GET_LOCK locks). PyMySQL sends one statement per call unless CLIENT.MULTI_STATEMENTS is asked for; it is not.
"""

from __future__ import annotations

import socket
import time

from opsproof.deadline import cut_off_after
from opsproof.errors import ProbeError, first_line
from opsproof.monitoring_role import MonitoringRole

# connection-level errors (CR_* 2000-2099; 1040 too many connections, 1045 access denied)
_UNREACHABLE = set(range(2000, 2100)) | {1040, 1045, 1129, 1130}
_COM_RESET_CONNECTION = 0x1F  # MySQL 5.7.3+, MariaDB 10.2.4+; PyMySQL names the code COM_END


class MysqlProbe:
    def __init__(self, host: str, port: int, user: str, password: str | None = None, database: str | None = None,
                 connect_timeout_s: float = 3.0, statement_timeout_ms: int = 5000, read_only: bool = True,
                 refuse_privileged_role: bool = True):
        self._params = dict(host=host, port=port, user=user, password=password or "", database=database)
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.read_only = read_only
        self.refuse_privileged_role = refuse_privileged_role  # production tiers; others warn
        self._conn = None
        self._session_sql = ""
        self._role: MonitoringRole | None = None
        self._refusal: str | None = None

    def _connection(self):
        if self._refusal:
            raise ProbeError(self._refusal, unreachable=True)
        if self._conn is None:
            import pymysql  # imported lazily, only when an environment has MySQL targets

            wait_s = self.statement_timeout_ms / 1000 + self.connect_timeout_s
            try:
                conn = pymysql.connect(**self._params, connect_timeout=self.connect_timeout_s, read_timeout=wait_s,
                                       write_timeout=wait_s, autocommit=True, charset="utf8mb4")
            except pymysql.MySQLError as exc:
                raise ProbeError(f"connect: {_text(exc)}", unreachable=True) from None
            if "MariaDB" in conn.get_server_info():
                timeout, value, read_only_var = "max_statement_time", self.statement_timeout_ms / 1000, "tx_read_only"
            else:  # MySQL 8 renamed tx_read_only
                timeout, value, read_only_var = "max_execution_time", self.statement_timeout_ms, "transaction_read_only"
            also = f", {read_only_var} = 1" if self.read_only else ""
            self._session_sql = f"SET SESSION {timeout} = {value}{also}"
            self._conn = conn
            try:
                self._check_session()
            except ProbeError:
                self.close()
                raise
        return self._conn

    def _check_session(self) -> None:
        """A read-write session gets its timeout once; a read-only one has its account's grants read."""
        if not self.read_only:
            self._query(self._session_sql, None, None)  # nothing resets a read-write session
            return
        from opsproof.mysql_roles import SESSIONS_SQL, role_of

        grants = self._query("SHOW GRANTS", None, "monitoring role")
        self._role = role_of(grants, self._query(SESSIONS_SQL, None, "monitoring role")[0]["sessions"])
        if self.refuse_privileged_role and self._role.refusal():
            self._refusal = self._role.refusal()
            raise ProbeError(self._refusal, unreachable=True)

    def monitoring_role(self) -> MonitoringRole | None:
        """The account and what it holds beyond reading; None for a read-write (sandbox) session."""
        self._connection()
        return self._role

    def rows(self, sql: str, params=None, label: str | None = None) -> list[dict]:
        """One statement's rows as dicts; with a ``label``, an error names it and its error code only."""
        self._connection()
        return self._query(sql, params, label)

    def _query(self, sql: str, params, label: str | None) -> list[dict]:
        import pymysql

        wait_s = self.statement_timeout_ms / 1000 + self.connect_timeout_s
        conn = self._conn
        expired = None
        try:
            try:
                # read_timeout bounds each read: a server trickling its rows is cut off at wait_s in all
                with cut_off_after(wait_s, lambda: conn._sock and conn._sock.shutdown(socket.SHUT_RDWR)) as expired:
                    with conn.cursor(pymysql.cursors.DictCursor) as cursor:
                        if self.read_only:
                            cursor.execute(self._session_sql)
                            cursor.execute("START TRANSACTION READ ONLY")
                        cursor.execute(sql, params)
                        return list(cursor.fetchall())
            finally:
                if self.read_only and self._conn is not None and not (expired and expired.is_set()):
                    self._reset()
        except (pymysql.MySQLError, OSError) as exc:
            if expired is not None and expired.is_set():
                self.close()
                raise ProbeError(f"{label or 'query'}: no complete answer within {wait_s:g} s",
                                 unreachable=True) from None
            if not isinstance(exc, pymysql.MySQLError):
                raise
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            lost = code in _UNREACHABLE
            if lost:
                self.close()
            if label is not None:
                raise ProbeError(f"{label}: {type(exc).__name__} ({code})", unreachable=lost) from None
            raise ProbeError(_text(exc), unreachable=lost) from None

    def _reset(self) -> None:
        """COM_RESET_CONNECTION (PyMySQL has no public call for it); a session it fails on is closed instead."""
        import pymysql

        try:
            self._conn._execute_command(_COM_RESET_CONNECTION, b"")
            self._conn._read_ok_packet()
        except pymysql.MySQLError:
            self.close()

    def ping_ms(self) -> float:
        started = time.perf_counter()
        self.rows("SELECT 1")
        return (time.perf_counter() - started) * 1000

    def server_version(self) -> str:
        return self.rows("SELECT VERSION() AS version")[0]["version"]

    def connections(self) -> tuple[int, int]:
        """(Threads_connected, max_connections)."""
        row = self.rows("SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
                        " WHERE VARIABLE_NAME = 'THREADS_CONNECTED') AS connected, @@max_connections AS max")[0]
        return int(row["connected"]), int(row["max"])

    def long_running(self, older_than_s: float) -> list[dict]:
        """Statements running longer than ``older_than_s`` (the runbook's SHOW PROCESSLIST), oldest first."""
        return self.rows(
            "SELECT id, user, db, command, state, time AS age_s FROM information_schema.PROCESSLIST"
            " WHERE command NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Slave_IO', 'Slave_SQL',"
            " 'Slave_worker') AND user <> 'system user' AND id <> CONNECTION_ID() AND time > %s"
            " ORDER BY time DESC", (older_than_s,))

    def replica_status(self) -> dict | None:
        """IO and SQL threads and lag of this server as a replica; None when it replicates from nothing."""
        try:
            rows = self.rows("SHOW REPLICA STATUS")
        except ProbeError:
            rows = self.rows("SHOW SLAVE STATUS")  # before MySQL 8.0.22 / MariaDB 10.5
        if not rows:
            return None
        row = {key.replace("Slave", "Replica").replace("Master", "Source"): value for key, value in rows[0].items()}
        return {"io_running": row.get("Replica_IO_Running"), "sql_running": row.get("Replica_SQL_Running"),
                "lag_s": row.get("Seconds_Behind_Source"), "last_error": row.get("Last_IO_Error") or row.get(
                    "Last_SQL_Error") or ""}

    def invariant(self, name: str, sql: str) -> int | float:
        """The one number a named query returns; an error names the query, never its text."""
        from opsproof.postgres.probe import number

        label = f"invariant {name}"
        rows = self.rows(sql, label=label)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise ProbeError(f"{label}: expected one value, got {len(rows)} row(s)")
        return number(next(iter(rows[0].values())), label)

    def close(self) -> None:
        """Close the session; the next statement opens (and checks) a new one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - an already broken connection
                pass
            finally:
                self._conn = None


def _text(exc: BaseException) -> str:
    """PyMySQL errors are ``(code, message)`` tuples: show them as ``message (code)``."""
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], int):
        return f"{first_line(Exception(args[1]))} ({args[0]})"
    return first_line(exc)
