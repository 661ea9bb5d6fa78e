"""The current migration revision, as each tool itself decides it from its bookkeeping table.

- Alembic: every row of ``alembic_version`` is a head (several rows: branches; none: base).
- Django: per app, the newest applied row (``max(id)``); a row exists only while its migration is applied.
- Rails: the integer maximum of ``schema_migrations.version`` (a string maximum is wrong across lengths).
- Laravel: the last migration, by name, of the latest ``batch``.
- Flyway: the highest version of the successful rows, compared number by number (1.10 > 1.9), never by
  ``installed_rank`` (``outOfOrder`` breaks that); a ``success = false`` row is a migration that failed
  and could not be rolled back.

>>> flyway_current([(1, "1", "init", "SQL", "V1__init.sql", True), (2, "1.10", "fees", "SQL", "V1_10__fees.sql", True),
...                 (3, "1.9", "late", "SQL", "V1_9__late.sql", True), (4, None, "view", "SQL", "R__view.sql", True)])
'1.10'
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MigrationState:
    """What the bookkeeping table says: the current revision(s) and, for Flyway, the failed rows."""

    tool: str
    table: str
    current: tuple[str, ...]  # Alembic: the heads; Django: ``app.name`` per app; the others: one or none
    failed: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)  # recorded, not judged: the latest batch, row counts


def flyway_key(version: str) -> tuple[int, ...]:
    """``1.10`` -> (1, 10); trailing zeros do not count (Flyway treats 1.0 and 1 alike)."""
    parts = [int(part) if part.isdigit() else -1 for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def flyway_current(rows: list[tuple]) -> str | None:
    """The highest successful version; rows are (installed_rank, version, description, type, script, success)."""
    versions = [version for _, version, _, _, _, success in rows if success and version is not None]
    return max(versions, key=flyway_key) if versions else None


def flyway_failed(rows: list[tuple]) -> tuple[str, ...]:
    """``1.6 add index (V1_6__add_index.sql)`` for each failed row; a repeatable one reads ``R ...``."""
    return tuple(f"{version or 'R'} {description} ({script})"
                 for _, version, description, _, script, success in rows if not success)


def _alembic(reader, table: str) -> MigrationState:
    rows = reader.rows(f"SELECT version_num FROM {reader.quote(table)} ORDER BY version_num", label=f"alembic {table}")
    return MigrationState("alembic", table, tuple(row[0] for row in rows))


def _django(reader, table: str) -> MigrationState:
    quoted = reader.quote(table)
    rows = reader.rows(f"SELECT app, name FROM {quoted} WHERE id IN (SELECT max(id) FROM {quoted} GROUP BY app)"
                       " ORDER BY app", label=f"django {table}")
    return MigrationState("django", table, tuple(f"{app}.{name}" for app, name in rows))


def _rails(reader, table: str) -> MigrationState:
    integer = "bigint" if reader.dialect == "postgres" else "UNSIGNED"
    latest, count = reader.rows(f"SELECT max(CAST(version AS {integer})), count(*) FROM {reader.quote(table)}",
                                label=f"rails {table}")[0]
    return MigrationState("rails", table, () if latest is None else (str(latest),), details={"applied": count})


def _laravel(reader, table: str) -> MigrationState:
    quoted = reader.quote(table)
    rows = reader.rows(f"SELECT migration, batch FROM {quoted} WHERE batch = (SELECT max(batch) FROM {quoted})"
                       " ORDER BY migration", label=f"laravel {table}")
    details = {"latest_batch": rows[-1][1], "latest_batch_migrations": [row[0] for row in rows]} if rows else {}
    return MigrationState("laravel", table, (rows[-1][0],) if rows else (), details=details)


def _flyway(reader, table: str) -> MigrationState:
    rows = reader.rows(f"SELECT installed_rank, version, description, type, script, success FROM {reader.quote(table)}"
                       " ORDER BY installed_rank", label=f"flyway {table}")
    current = flyway_current(rows)
    return MigrationState("flyway", table, () if current is None else (current,), flyway_failed(rows),
                          details={"rows": len(rows)})


READERS = {"alembic": _alembic, "django": _django, "rails": _rails, "laravel": _laravel, "flyway": _flyway}


def read_migrations(reader, tool: str, table: str) -> MigrationState:
    """The state of ``table`` (``schema.table``, already qualified) as ``tool`` reads it: one statement."""
    return READERS[tool](reader, table)
