"""Schema: the database is at the release's migration revision, no migration failed, and what the code needs
is there."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


def _shown(revisions):
    """As the evidence shows revisions: none as None, one as itself, several (Alembic branches) as a sorted list."""
    ordered = sorted(revisions)
    return None if not ordered else ordered[0] if len(ordered) == 1 else ordered


@pytest.fixture
def migration_state(schemas_target, probes):
    """The bookkeeping table read once per target (None: it does not exist)."""
    migrations = schemas_target.migrations
    if migrations is None:
        pytest.skip(f"{schemas_target.where} has no migrations expectation")
    return probes.measured(schemas_target, "migrations",
                           lambda probe: probe.migrations(migrations.tool, migrations.table_name))


def _migrated(schemas_target, schemas, state, evidence):
    """A missing bookkeeping table fails the check at once: nothing was ever migrated there."""
    evidence.record("database", schemas_target.of)
    if state is None:
        evidence.require("missing_tables", [schemas.qualified(schemas_target.migrations.table_name)], "==", [])
    evidence.record("migration_table", state.table)
    return state


@pytest.mark.p0
def test_migrations_at_expected_revision(schemas_target, schemas, migration_state, expected, evidence):
    state, wanted = _migrated(schemas_target, schemas, migration_state, evidence), expected.migration(schemas_target)
    for key, value in state.details.items():
        evidence.record(f"{state.tool}_{key}", value)
    if not wanted:
        evidence.record(f"{state.tool}_revision", _shown(state.current))
        pytest.skip(f"{schemas_target.where} expects no migration revision (at {_shown(state.current)}): set "
                    "migrations.revision or pass --expect-migration")
    if state.tool == "django":
        latest = dict(revision.split(".", 1) for revision in state.current)
        for revision in wanted:
            app, name = revision.split(".", 1)
            evidence.expect(f"django_revision.{app}", latest.get(app), "==", name)
    else:
        if state.tool == "rails":  # Rails compares versions as integers
            wanted = [str(int(revision)) for revision in wanted]
        evidence.expect(f"{state.tool}_revision", _shown(state.current), "==", _shown(wanted))


@pytest.mark.p0
def test_migrations_none_failed(schemas_target, schemas, migration_state, evidence):
    if schemas_target.migrations.tool != "flyway":
        pytest.skip(f"{schemas_target.migrations.tool} keeps no record of failed migrations")
    state = _migrated(schemas_target, schemas, migration_state, evidence)
    evidence.expect("flyway_failed_migrations", list(state.failed), "==", [])


@pytest.mark.p0
def test_tables_columns_and_indexes_present(schemas_target, schemas, evidence):
    if not schemas_target.tables:
        pytest.skip(f"{schemas_target.where} has no tables expectation")
    evidence.record("database", schemas_target.of)
    for what, names in schemas.missing(schemas_target.tables).items():
        evidence.expect(f"missing_{what}", names, "==", [])
