"""What the runbooks ask of PostgreSQL, one query each, answered as plain values.

>>> db = PostgresProbe("postgresql://bot@db:5432/app", password=None, read_only=True)   # doctest: +SKIP
>>> db.role(), db.connections()                                                         # doctest: +SKIP
('primary', (12, 100))
>>> db.long_running("active", older_than_s=300)                                         # doctest: +SKIP
[{'pid': 4711, 'user': 'app', 'application_name': 'worker', 'state': 'active', 'age_s': 912.4}]
>>> db.invariant("failed_transactions_24h", "SELECT count(*) FROM transactions WHERE ...")  # doctest: +SKIP
3
"""

from __future__ import annotations

from decimal import Decimal

from opsproof.errors import ProbeError
from opsproof.postgres.session import PostgresSession

_CLIENTS = "backend_type = 'client backend' AND pid <> pg_backend_pid()"


class PostgresProbe(PostgresSession):
    def role(self) -> str:
        """``primary`` or ``replica`` (a server in recovery)."""
        return "replica" if self.scalar("SELECT pg_is_in_recovery()") else "primary"

    def connections(self) -> tuple[int, int]:
        """(client connections in use, max_connections)."""
        in_use, limit = self.rows(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), current_setting('max_connections')::int"
            " FROM pg_stat_activity"
        )[0]
        return in_use, limit

    def long_running(self, state: str, older_than_s: float) -> list[dict]:
        """Sessions in ``state`` ('active' or 'idle in transaction') for longer than ``older_than_s``.

        An active session ages from its query's start, an idle one from its transaction's start.
        """
        started = "CASE WHEN state = 'active' THEN query_start ELSE xact_start END"
        rows = self.rows(
            f"SELECT pid, usename, application_name, state, extract(epoch FROM now() - {started})::float AS age_s"
            f" FROM pg_stat_activity WHERE {_CLIENTS} AND state = %s"
            f" AND {started} < now() - make_interval(secs => %s) ORDER BY age_s DESC",
            (state, older_than_s),
        )
        return [dict(zip(("pid", "user", "application_name", "state", "age_s"), row)) for row in rows]

    def replicas(self) -> dict[str, dict]:
        """On a primary: each connected standby by application_name, with its replay lag."""
        rows = self.rows(
            "SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
            " coalesce(extract(epoch FROM replay_lag), 0)::float FROM pg_stat_replication"
        )
        return {name: {"state": state, "lag_bytes": lag_bytes, "lag_s": lag_s}
                for name, state, lag_bytes, lag_s in rows}

    def replica_lag(self) -> dict:
        """On a replica: WAL received but not replayed (bytes), age of the last replayed commit (s)."""
        status, lag_bytes, lag_s = self.rows(
            "SELECT (SELECT status FROM pg_stat_wal_receiver),"
            " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,"
            " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
            " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float"
        )[0]
        return {"receiver": status or "stopped", "lag_bytes": lag_bytes or 0, "lag_s": lag_s or 0.0}

    def has_extension(self, name: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM pg_extension WHERE extname = %s", (name,)))

    def slowest_statements(self, limit: int = 5) -> list[dict]:
        """pg_stat_statements' statements in this database, slowest mean first (normalised text, $1 for values)."""
        rows = self.rows(
            "SELECT CASE WHEN s.query ~* 'password' THEN '(text withheld: mentions a password)'"
            " ELSE left(regexp_replace(s.query, '\\s+', ' ', 'g'), 120) END,"
            " s.calls, round(s.mean_exec_time::numeric, 1)"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()"
            " ORDER BY s.mean_exec_time DESC LIMIT %s",
            (limit,),
        )
        return [{"query": query, "calls": calls, "mean_ms": float(mean)} for query, calls, mean in rows]

    def database_size_bytes(self) -> int:
        return self.scalar("SELECT pg_database_size(current_database())")

    def largest_tables(self, limit: int = 5) -> list[dict]:
        """Tables (with their indexes and TOAST) by total size."""
        rows = self.rows(
            "SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
            " ORDER BY 2 DESC LIMIT %s",
            (limit,),
        )
        return [{"table": table, "size_bytes": size} for table, size in rows]

    def invariant(self, name: str, sql: str) -> int | float:
        """The one number a named query returns; an error names the query, never its text."""
        value = self.scalar(sql, label=f"invariant {name}")
        return number(value, f"invariant {name}")


def number(value, label: str) -> int | float:
    """A query's result as a plain number (numeric columns arrive as Decimal)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ProbeError(f"{label}: returned {type(value).__name__}, not a number")
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
