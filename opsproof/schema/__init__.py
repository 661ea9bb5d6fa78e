"""Schema and migration state, read through a database target's own read-only session."""

from opsproof.schema.catalog import SchemaReader
from opsproof.schema.migrations import MigrationState, read_migrations
from opsproof.schema.probe import SchemaProbe

__all__ = ["MigrationState", "SchemaProbe", "SchemaReader", "read_migrations"]
