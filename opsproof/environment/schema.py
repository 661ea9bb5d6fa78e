"""What a database's schema must show after a deploy: the migration revision, and tables, columns, indexes.

The revision is read from the bookkeeping table each framework keeps (Alembic, Django, Rails, Laravel,
Flyway); what "latest" means differs per tool and is decided in ``opsproof.schema.migrations``.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

from opsproof.environment.base import Model, Target
from opsproof.environment.overrides import Release, Revision

Tool = Literal["alembic", "django", "rails", "laravel", "flyway"]
DEFAULT_TABLES = {"alembic": "alembic_version", "django": "django_migrations", "rails": "schema_migrations",
                  "laravel": "migrations", "flyway": "flyway_schema_history"}
# interpolated into SQL (quoted), so only plain identifiers, optionally schema-qualified
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_$]{0,63}"
TableName = Annotated[str, StringConstraints(pattern=rf"^{_IDENTIFIER}(\.{_IDENTIFIER})?$")]
ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_FLYWAY_VERSION = re.compile(r"^\d+(\.\d+)*$")
_DJANGO = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[^.\s]+$")


def _listed(value):
    return [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value


def revision_problem(tool: str, revisions: tuple[str, ...] | list[str]) -> str | None:
    """Why these expected revisions cannot be right for ``tool`` (the file and --expect-migration alike)."""
    if len(set(revisions)) != len(revisions):
        return f"{', '.join(revisions)}: a revision given twice"
    if tool in ("rails", "laravel", "flyway") and len(revisions) > 1:
        return f"{tool} has one current revision, not {len(revisions)} ({', '.join(revisions)})"
    for revision in revisions:
        if tool == "rails" and not revision.isdigit():
            return f"{revision!r} is not a Rails schema version (digits, like 20240612093000)"
        if tool == "flyway" and not _FLYWAY_VERSION.match(revision):
            return f"{revision!r} is not a Flyway version (numbers and dots, like 1.6 or 2024.05.1)"
        if tool == "django" and not _DJANGO.match(revision):
            return f"{revision!r} is not a Django migration: write app.name, like payments.0042_add_fee"
    if tool == "django":
        apps = [revision.split(".", 1)[0] for revision in revisions]
        if len(set(apps)) != len(apps):
            return "one latest migration per Django app: an app is given twice"
    return None


class Migrations(Model):
    """The migration tool's bookkeeping table and the revision the release under test must have applied.

    ``revision``: Alembic, every head (one, or a list for branches); Django, ``app.name`` per app that
    must be at that migration; Rails, the schema version; Laravel, the migration name; Flyway, the version.
    """

    tool: Tool
    table: TableName | None = Field(None, description="default: the tool's own (alembic_version, ...)")
    revision: Annotated[list[Revision], BeforeValidator(_listed)] = Field(default_factory=list)
    release: Release | None = Field(None, description="release group: --expect-migration GROUP=REV sets it")

    @model_validator(mode="after")
    def _fits_tool(self):
        problem = revision_problem(self.tool, self.revision)
        if problem:
            raise ValueError(f"revision: {problem}")
        return self

    @property
    def table_name(self) -> str:
        return self.table or DEFAULT_TABLES[self.tool]


class TableExpectation(Model):
    columns: list[ObjectName] = Field(default_factory=list)
    indexes: list[ObjectName] = Field(default_factory=list, description="index names, primary keys' included")


def _tables(value):
    """``tables: [users, wallets]`` or ``tables: {users: {columns: [...]}, wallets: null}``."""
    if isinstance(value, list):
        return {name: {} for name in value}
    if isinstance(value, dict):
        return {name: {} if spec is None else spec for name, spec in value.items()}
    return value


Tables = Annotated[dict[ObjectName, TableExpectation], BeforeValidator(_tables)]


class SchemaTarget(Target):
    """A database's schema after a deploy, read through the session of the target it names in ``of``.

    Its own section rather than keys of the database target, so one database can hold two expectations
    (a Django app and a Flyway-managed reporting schema) and each is its own test id.
    """

    kind: ClassVar[str] = "schemas"
    of: Annotated[str, StringConstraints(pattern=r"^(postgres|mysql)\.[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")] = Field(
        description="the postgres or mysql target of this file whose session reads it")
    migrations: Migrations | None = None
    tables: Tables = Field(default_factory=dict, description="table or schema.table (default: the session's "
                                                            "current_schema(), or DATABASE() on MySQL)")

    @field_validator("tables")
    @classmethod
    def _qualified_once(cls, value):
        for name in value:
            if name.count(".") > 1 or name.startswith(".") or name.endswith("."):
                raise ValueError(f"{name}: write table or schema.table")
        return value

    @model_validator(mode="after")
    def _expects_something(self):
        if self.migrations is None and not self.tables:
            raise ValueError("give migrations, tables or both")
        return self

    @classmethod
    def check_section(cls, targets: dict[str, SchemaTarget], environment) -> None:
        for target in targets.values():
            kind, _, name = target.of.partition(".")
            if name not in environment.targets(kind):
                raise ValueError(f"schemas.{target.name}.of: {target.of} is not a target in this environment")

    def source_in(self, environment):
        kind, _, name = self.of.partition(".")
        return environment.targets(kind)[name]
