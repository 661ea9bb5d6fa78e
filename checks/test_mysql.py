"""MySQL / MariaDB: reachable, monitoring account, connections, long-running statements, replica threads and lag,
invariants."""

import pytest

pytestmark = [pytest.mark.nightly]


@pytest.mark.smoke
@pytest.mark.p0
def test_mysql_answers_select_1(mysql, evidence):
    evidence.record("server_version", mysql.server_version())
    evidence.record("select_1_ms", mysql.ping_ms())


@pytest.mark.smoke
@pytest.mark.p1
def test_mysql_monitoring_role_is_least_privileged(mysql_target, mysql, evidence):
    role = mysql.monitoring_role()  # on tier production a privileged account never gets here: refused
    if role is None:
        pytest.skip(f"{mysql_target.where} has read-write sessions (tier sandbox)")
    evidence.record("monitoring_role", role.name)
    evidence.caution("monitoring_role_privileges", list(role.holds), "==", [],
                     f"account {role.name} acts outside a read-only transaction; tier production refuses it")
    evidence.caution("sessions_it_can_kill", role.signalable_sessions, "==", 0,
                     f"other sessions run as the user of {role.name}, and the server lets it KILL them")


@pytest.mark.smoke
@pytest.mark.p1
def test_mysql_connections_within_threshold(mysql_target, mysql, evidence):
    connected, max_connections = mysql.connections()
    evidence.record("threads_connected", connected)
    evidence.record("max_connections", max_connections)
    evidence.judge("connections_pct", round(100 * connected / max_connections, 1), mysql_target.connections_pct)


@pytest.mark.p1
def test_mysql_has_no_long_running_queries(mysql_target, mysql, evidence):
    if mysql_target.long_running_s is None:
        pytest.skip(f"{mysql_target.where} sets no long_running_s")
    statements = evidence.record("long_running_queries", mysql.long_running(mysql_target.long_running_s))
    oldest_s = statements[0]["age_s"] if statements else 0
    evidence.expect("oldest_query_s", oldest_s, "<=", mysql_target.long_running_s)


@pytest.mark.p1
def test_mysql_replica_threads_running(mysql_target, mysql, evidence):
    status = mysql.replica_status()
    if status is None:
        pytest.skip(f"{mysql_target.where} is not a replica")
    evidence.record("replica_status", status)
    io_running = evidence.expect("replica_io_running", status["io_running"], "==", "Yes")
    sql_running = evidence.expect("replica_sql_running", status["sql_running"], "==", "Yes")
    if io_running and sql_running:  # with a thread stopped the server reports no lag (NULL) to judge
        evidence.within("replica_lag_s", status["lag_s"], mysql_target.replica_lag_s)


@pytest.mark.smoke
@pytest.mark.p1
def test_mysql_invariant_holds(mysql_target, mysql_invariant, mysql, evidence):
    invariant = mysql_target.invariants.get(mysql_invariant)
    if invariant is None:
        pytest.skip(f"{mysql_target.where} has no invariant {mysql_invariant}")
    value = mysql.invariant(mysql_invariant, invariant.sql)
    if invariant.threshold is not None:
        evidence.within(mysql_invariant, value, invariant.threshold)
    for op, limit in invariant.bounds:
        evidence.expect(mysql_invariant, value, op, limit)
