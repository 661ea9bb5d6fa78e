"""PostgreSQL: the runbook's `psql -c "SELECT version();"`, answered within the target's timeout."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p0
def test_postgres_answers_select_1(postgres, evidence):
    evidence.record("server_version", postgres.server_version())
    evidence.record("select_1_ms", postgres.ping_ms())
