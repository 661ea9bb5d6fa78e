"""Tables, columns and indexes from the server's catalog, for PostgreSQL and MySQL/MariaDB alike.

PostgreSQL is read from ``pg_catalog`` (``pg_class``, ``pg_attribute``, ``pg_indexes``), which shows every
object whatever the role may read; ``information_schema`` would hide the columns of tables it has no
privilege on. MySQL has only ``information_schema``, which shows just what the account has a privilege on.

>>> reader = SchemaReader(postgres_probe, "postgres")            # doctest: +SKIP
>>> reader.qualify(["wallets", "audit.events"])                  # doctest: +SKIP
{'wallets': 'public.wallets', 'audit.events': 'audit.events'}
>>> reader.columns(["public.wallets"])                           # doctest: +SKIP
{'public.wallets': {'id', 'user_id', 'balance'}}
"""

from __future__ import annotations

from collections import defaultdict

_PG_RELATIONS = "c.relkind IN ('r', 'p', 'v', 'm', 'f')"  # tables, partitioned, views, materialised, foreign
_PG_NAME = "n.nspname || '.' || c.relname"
SQL = {
    "postgres": {
        "current_schema": "SELECT current_schema()",
        "tables": f"SELECT {_PG_NAME} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                  f" WHERE {_PG_RELATIONS} AND {_PG_NAME} = ANY(%s)",
        "columns": f"SELECT {_PG_NAME}, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                   f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_PG_RELATIONS} AND a.attnum > 0"
                   f" AND NOT a.attisdropped AND {_PG_NAME} = ANY(%s)",
        "indexes": "SELECT schemaname || '.' || tablename, indexname FROM pg_indexes"
                   " WHERE schemaname || '.' || tablename = ANY(%s)",
    },
    "mysql": {
        "current_schema": "SELECT DATABASE()",
        "tables": "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES"
                  " WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) IN ({names})",
        "columns": "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), COLUMN_NAME FROM information_schema.COLUMNS"
                   " WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) IN ({names})",
        "indexes": "SELECT DISTINCT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), INDEX_NAME"
                   " FROM information_schema.STATISTICS"
                   " WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) IN ({names})",
    },
}


class SchemaReader:
    """One dialect's catalog queries, each one statement through the target's session (``rows``)."""

    def __init__(self, session, dialect: str):
        self._session, self.dialect = session, dialect
        self._current: str | None = None

    def rows(self, sql: str, params=None, label: str | None = None) -> list[tuple]:
        """Rows as tuples from either session (MySQL's come as dicts)."""
        rows = self._session.rows(sql, params, label=label)
        return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows]

    def quote(self, qualified: str) -> str:
        """``audit.events`` as SQL; only for names the environment model already limited to identifiers."""
        mark = '"' if self.dialect == "postgres" else "`"
        return ".".join(f"{mark}{part}{mark}" for part in qualified.split("."))

    def current_schema(self) -> str:
        if self._current is None:
            self._current = self.rows(SQL[self.dialect]["current_schema"], label="current schema")[0][0]
        return self._current

    def qualify(self, names: list[str]) -> dict[str, str]:
        """Each name as ``schema.table``; an unqualified one is in the session's current schema."""
        return {name: name if "." in name else f"{self.current_schema()}.{name}" for name in names}

    def _catalog(self, what: str, qualified: list[str]) -> list[tuple]:
        if not qualified:
            return []
        sql = SQL[self.dialect][what]
        if self.dialect == "postgres":
            return self.rows(sql, (list(qualified),), label=f"catalog {what}")
        return self.rows(sql.format(names=", ".join(["%s"] * len(qualified))), tuple(qualified),
                         label=f"catalog {what}")

    def tables(self, qualified: list[str]) -> set[str]:
        """Which of these tables (or views) exist."""
        return {row[0] for row in self._catalog("tables", qualified)}

    def columns(self, qualified: list[str]) -> dict[str, set[str]]:
        return self._grouped(self._catalog("columns", qualified))

    def indexes(self, qualified: list[str]) -> dict[str, set[str]]:
        return self._grouped(self._catalog("indexes", qualified))

    def _grouped(self, rows: list[tuple]) -> dict[str, set[str]]:
        """MySQL compares column and index names without regard to case, as the server does."""
        found: dict[str, set[str]] = defaultdict(set)
        for table, name in rows:
            found[table].add(name.lower() if self.dialect == "mysql" else name)
        return dict(found)

    def same_name(self, name: str) -> str:
        return name.lower() if self.dialect == "mysql" else name
