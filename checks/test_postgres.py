"""PostgreSQL: the runbooks' database pages: reachable, role, monitoring role, connections, long queries, replication,
invariants."""

import pytest

pytestmark = [pytest.mark.nightly]


@pytest.mark.smoke
@pytest.mark.p0
def test_postgres_answers_select_1(postgres, evidence):
    evidence.record("server_version", postgres.server_version())
    evidence.record("select_1_ms", postgres.ping_ms())


@pytest.mark.smoke
@pytest.mark.p1
def test_postgres_role_is_expected(postgres_target, postgres, evidence):
    role = evidence.record("role", postgres.role())
    if postgres_target.expect_role is None:
        pytest.skip(f"{postgres_target.where} sets no expect_role (role is {role})")
    evidence.expect("role", role, "==", postgres_target.expect_role)


@pytest.mark.smoke
@pytest.mark.p1
def test_postgres_monitoring_role_is_least_privileged(postgres_target, postgres, evidence):
    role = postgres.monitoring_role()  # on tier production a privileged role never gets here: refused
    if role is None:
        pytest.skip(f"{postgres_target.where} has read-write sessions (tier sandbox)")
    evidence.record("monitoring_role", role.name)
    evidence.caution("monitoring_role_privileges", list(role.holds), "==", [],
                     f"role {role.name!r} acts outside a read-only transaction; tier production refuses it")
    evidence.caution("sessions_it_can_signal", role.signalable_sessions, "==", 0,
                     f"other sessions run as role {role.name!r} (or a role it inherits), and PostgreSQL lets it "
                     "cancel or terminate them")


@pytest.mark.smoke
@pytest.mark.p1
def test_postgres_connections_within_threshold(postgres_target, postgres, evidence):
    in_use, max_connections = postgres.connections()
    evidence.record("connections_in_use", in_use)
    evidence.record("max_connections", max_connections)
    evidence.judge("connections_pct", round(100 * in_use / max_connections, 1), postgres_target.connections_pct)


@pytest.mark.p1
def test_postgres_has_no_long_running_queries(postgres_target, postgres, evidence):
    if postgres_target.long_running_s is None:
        pytest.skip(f"{postgres_target.where} sets no long_running_s")
    sessions = evidence.record("long_running_queries", postgres.long_running("active", postgres_target.long_running_s))
    oldest_s = round(sessions[0]["age_s"], 1) if sessions else 0.0
    evidence.expect("oldest_query_s", oldest_s, "<=", postgres_target.long_running_s)


@pytest.mark.p1
def test_postgres_has_no_long_idle_transactions(postgres_target, postgres, evidence):
    if postgres_target.long_running_s is None:
        pytest.skip(f"{postgres_target.where} sets no long_running_s")
    sessions = evidence.record("idle_transactions",
                               postgres.long_running("idle in transaction", postgres_target.long_running_s))
    oldest_s = round(sessions[0]["age_s"], 1) if sessions else 0.0
    evidence.expect("oldest_idle_transaction_s", oldest_s, "<=", postgres_target.long_running_s)


@pytest.mark.smoke
@pytest.mark.p1
def test_postgres_expected_replicas_are_streaming(postgres_target, postgres, evidence):
    if not postgres_target.replicas:
        pytest.skip(f"{postgres_target.where} expects no replicas")
    connected = evidence.record("replicas", postgres.replicas())
    missing = [name for name in postgres_target.replicas if connected.get(name, {}).get("state") != "streaming"]
    evidence.expect("replicas_not_streaming", missing, "==", [])


@pytest.mark.p1
def test_postgres_replication_lag_within_threshold(postgres_target, postgres, evidence):
    if postgres_target.replication_lag_bytes is None and postgres_target.replication_lag_s is None:
        pytest.skip(f"{postgres_target.where} sets no replication_lag_bytes or replication_lag_s")
    if postgres.role() == "replica":
        lag = evidence.record("replica_lag", postgres.replica_lag())
        evidence.expect("wal_receiver", lag["receiver"], "==", "streaming")
    else:
        replicas = evidence.record("replicas", postgres.replicas())
        if not replicas:
            pytest.skip(f"{postgres_target.where} is a primary with no connected replica")
        lag = {"lag_bytes": max(r["lag_bytes"] or 0 for r in replicas.values()),
               "lag_s": max(r["lag_s"] for r in replicas.values())}
    evidence.within("replication_lag_bytes", lag["lag_bytes"], postgres_target.replication_lag_bytes)
    evidence.within("replication_lag_s", round(lag["lag_s"], 1), postgres_target.replication_lag_s)


@pytest.mark.p2
def test_postgres_statements_within_mean_time(postgres_target, postgres, evidence):
    if not postgres.has_extension("pg_stat_statements"):
        pytest.skip(f"pg_stat_statements is not installed in the database of {postgres_target.where}")
    statements = evidence.record("slowest_statements", postgres.slowest_statements())
    slowest_ms = statements[0]["mean_ms"] if statements else 0.0
    evidence.judge("statement_mean_ms", slowest_ms, postgres_target.statement_mean_ms)


@pytest.mark.p3
def test_postgres_database_size_within_threshold(postgres_target, postgres, evidence):
    evidence.record("largest_tables", postgres.largest_tables())
    evidence.judge("database_size_bytes", postgres.database_size_bytes(), postgres_target.database_size_bytes)


@pytest.mark.smoke
@pytest.mark.p1
def test_postgres_invariant_holds(postgres_target, postgres_invariant, postgres, evidence):
    invariant = postgres_target.invariants.get(postgres_invariant)
    if invariant is None:
        pytest.skip(f"{postgres_target.where} has no invariant {postgres_invariant}")
    value = postgres.invariant(postgres_invariant, invariant.sql)
    if invariant.threshold is not None:
        evidence.within(postgres_invariant, value, invariant.threshold)
    for op, limit in invariant.bounds:
        evidence.expect(postgres_invariant, value, op, limit)
