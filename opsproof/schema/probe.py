"""Schema probe: the migration state and the tables, columns and indexes a release needs, read through the
``of`` target's own session (read-only, one statement per call, outside the sandbox tier).

>>> probe = SchemaProbe.of(schema_target, environment)                         # doctest: +SKIP
>>> probe.migrations("flyway", "flyway_schema_history")                       # doctest: +SKIP
MigrationState(tool='flyway', table='ledger.flyway_schema_history', current=('1.5',),
               failed=('1.6 add index (V1_6__add_index.sql)',), details={'rows': 7})
>>> probe.missing({"wallets": TableExpectation(columns=["currency"], indexes=["wallets_user_idx"])})  # doctest: +SKIP
{'tables': [], 'columns': ['wallets.currency'], 'indexes': []}
"""

from __future__ import annotations

from opsproof.schema.catalog import SchemaReader
from opsproof.schema.migrations import MigrationState, read_migrations


class SchemaProbe:
    def __init__(self, session, dialect: str):
        self._session = session
        self.reader = SchemaReader(session, dialect)

    @classmethod
    def of(cls, target, environment) -> SchemaProbe:
        """A session of its own on the ``of`` database, opened as that target's probe would be."""
        from opsproof.probes import open_probe

        source = target.source_in(environment)
        return cls(open_probe(source, environment), source.kind)

    def qualified(self, table: str) -> str:
        return self.reader.qualify([table])[table]

    def migrations(self, tool: str, table: str) -> MigrationState | None:
        """The bookkeeping table's state, or None when the table does not exist (never migrated)."""
        qualified = self.qualified(table)
        if not self.reader.tables([qualified]):
            return None
        return read_migrations(self.reader, tool, qualified)

    def missing(self, tables: dict) -> dict[str, list[str]]:
        """What of ``{table: TableExpectation}`` the database lacks, named as written: ``wallets.currency``.
        The columns and indexes of a missing table are not listed again."""
        names = self.reader.qualify(list(tables))
        present = self.reader.tables(list(names.values()))
        found = [name for name in tables if names[name] in present]
        columns = self.reader.columns([names[n] for n in found if tables[n].columns])
        indexes = self.reader.indexes([names[n] for n in found if tables[n].indexes])
        same = self.reader.same_name
        return {
            "tables": [name for name in tables if name not in found],
            "columns": [f"{n}.{c}" for n in found for c in tables[n].columns
                        if same(c) not in columns.get(names[n], set())],
            "indexes": [f"{n}.{i}" for n in found for i in tables[n].indexes
                        if same(i) not in indexes.get(names[n], set())],
        }

    def close(self) -> None:
        self._session.close()
