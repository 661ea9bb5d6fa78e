"""MySQL/MariaDB checks against the sandbox's MariaDB: pass when healthy, fail with evidence on real faults."""

from __future__ import annotations

import re
import threading
import time

import pymysql
import pytest

from conftest import sandbox_environment
from opsproof.sandbox import mariadb as sandbox_mariadb
from opsproof.sandbox.processes import free_port, stop_pid
from opsproof.thresholds import show_value

INVARIANTS = {
    "failed_transactions_24h": {
        "sql": "SELECT count(*) FROM transactions WHERE status = 'failed' AND created_at > now() - INTERVAL 24 HOUR",
        "max": 50},
    "open_compliance_alerts": {"sql": "SELECT count(*) FROM compliance_alerts WHERE status = 'open'",
                               "warn": 10, "crit": 25},
}


@pytest.fixture(autouse=True)
def mysql_password(monkeypatch, sandbox):
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", sandbox.variables["SANDBOX_MYSQL_PASSWORD"])


def mysql_environment(sandbox, **settings) -> dict:
    target = {"host": "127.0.0.1", "port": sandbox.port("mariadb"), "user": sandbox_mariadb.APP_USER,
              "password": "${TEST_MYSQL_PASSWORD}", "database": sandbox_mariadb.DATABASE, "connect_timeout_s": 2,
              "statement_timeout_ms": 2000, **settings}
    return sandbox_environment(sandbox, mysql={"ledger": target})


def connect(sandbox, admin: bool = False):
    user, password = ((sandbox_mariadb.ADMIN_USER, sandbox.variables["SANDBOX_MYSQL_ADMIN_PASSWORD"]) if admin
                      else (sandbox_mariadb.APP_USER, sandbox.variables["SANDBOX_MYSQL_PASSWORD"]))
    return pymysql.connect(host="127.0.0.1", port=sandbox.port("mariadb"), user=user, password=password,
                           database=sandbox_mariadb.DATABASE, autocommit=True, connect_timeout=5)


def execute(conn, sql: str):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_every_mysql_check_passes_on_the_healthy_sandbox(sandbox, write_env, run_checks):
    environment = mysql_environment(sandbox, connections_pct={"warn": 80, "crit": 95}, long_running_s=300,
                                    invariants=INVARIANTS)
    run = run_checks(write_env(environment), "-k", "mysql")
    assert run.ret == 0, run.output
    outcomes = {r["id"].split("::")[1]: r["outcome"] for r in run.results["checks"]}
    assert outcomes == {
        "test_mysql_answers_select_1[ledger]": "passed", "test_mysql_connections_within_threshold[ledger]": "passed",
        "test_mysql_monitoring_role_is_least_privileged[ledger]": "skipped",
        "test_mysql_has_no_long_running_queries[ledger]": "passed",
        "test_mysql_replica_threads_running[ledger]": "skipped",
        "test_mysql_invariant_holds[ledger-failed_transactions_24h]": "passed",
        "test_mysql_invariant_holds[ledger-open_compliance_alerts]": "passed"}
    assert "MariaDB" in run.record("test_mysql_answers_select_1")["measurements"][0]["value"]
    assert run.record("test_mysql_replica_threads_running")["message"] == "mysql.ledger is not a replica"
    assert run.record("test_mysql_invariant_holds")["measurements"][0]["value"] == 4


@pytest.fixture
def held_connections(sandbox):
    held = [connect(sandbox) for _ in range(34)]
    yield
    for conn in held:
        conn.close()


def test_held_connections_fail_connections_pct(sandbox, write_env, run_checks, held_connections):
    run = run_checks(write_env(mysql_environment(sandbox, connections_pct={"warn": 50, "crit": 80})),
                     "-k", "mysql and (connections)")
    record = run.record("test_mysql_connections_within_threshold")
    pct = record["measurements"][-1]["value"]
    assert run.ret == 1 and pct >= 87.5
    assert record["message"] == f"connections_pct ({show_value(pct)}) <= 80 on mysql.ledger (crit)"


@pytest.fixture
def sleeping_query(sandbox):
    """SELECT SLEEP(60) in another session for 2 s; killed afterwards."""
    sleeper = connect(sandbox)
    thread_id = sleeper.thread_id()
    thread = threading.Thread(target=lambda: _ignore_errors(execute, sleeper, "SELECT SLEEP(60)"), daemon=True)
    thread.start()
    time.sleep(2.2)
    yield
    with connect(sandbox, admin=True) as admin:
        execute(admin, f"KILL QUERY {thread_id}")
    thread.join(5)
    sleeper.close()


def _ignore_errors(function, *args):
    try:
        function(*args)
    except pymysql.MySQLError:
        pass


def test_long_running_query_fails(sandbox, write_env, run_checks, sleeping_query):
    run = run_checks(write_env(mysql_environment(sandbox, long_running_s=1)), "-k", "mysql and (long_running)")
    record = run.record("test_mysql_has_no_long_running_queries")
    assert run.ret == 1 and re.fullmatch(r"oldest_query_s \([23]\) <= 1 on mysql\.ledger", record["message"])
    assert record["measurements"][0]["value"][0]["state"] == "User sleep"


@pytest.fixture
def failed_transactions(sandbox):
    with connect(sandbox) as conn:
        execute(conn, "INSERT INTO transactions (wallet_id, amount, status, created_at)"
                      " SELECT 1, 1.01, 'failed', now() - INTERVAL 5 MINUTE FROM seq_1_to_60")
    yield
    with connect(sandbox) as conn:
        execute(conn, "DELETE FROM transactions WHERE amount = 1.01 AND status = 'failed'")


def test_failed_transactions_over_max_fail_the_invariant(sandbox, write_env, run_checks, failed_transactions):
    run = run_checks(write_env(mysql_environment(sandbox, invariants=INVARIANTS)), "-k", "mysql and (invariant)")
    assert run.ret == 1
    assert run.record("test_mysql_invariant_holds")["message"] == "failed_transactions_24h (64) <= 50 on mysql.ledger"


def test_erroring_invariant_names_it_not_its_sql(sandbox, write_env, run_checks):
    invariants = {"ledger_balance": {"sql": "SELECT sum(amount) FROM ledger_s3cr3t", "max": 0}}
    run = run_checks(write_env(mysql_environment(sandbox, invariants=invariants)), "-k", "mysql and (invariant)")
    record = run.record("test_mysql_invariant_holds")
    assert record["outcome"] == "error" and "s3cr3t" not in run.output
    assert record["message"] == "could not measure on mysql.ledger: invariant ledger_balance: ProgrammingError (1146)"


def test_invariant_that_writes_is_refused_outside_the_sandbox_tier(sandbox, write_env, run_checks):
    sql = "INSERT INTO compliance_alerts (user_id, rule, status, created_at) VALUES (1, 'sneaky', 'open', now())"
    environment = mysql_environment(sandbox, invariants={"sneaky_write": {"sql": sql, "max": 0}})
    run = run_checks(write_env({**environment, "tier": "staging"}), "-k", "mysql and (invariant)")
    record = run.record("test_mysql_invariant_holds")
    assert record["outcome"] == "error"
    assert record["message"] == "could not measure on mysql.ledger: invariant sneaky_write: OperationalError (1792)"
    with connect(sandbox) as conn:
        assert execute(conn, "SELECT count(*) FROM compliance_alerts WHERE rule = 'sneaky'")[0][0] == 0


@pytest.fixture
def replica_of_a_stopped_source(sandbox, refused_port):
    """The sandbox MariaDB made a replica of a source that refuses connections; reset afterwards."""
    with connect(sandbox, admin=True) as admin:
        execute(admin, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={refused_port}, MASTER_USER='repl',"
                       " MASTER_PASSWORD='repl', MASTER_CONNECT_RETRY=1")
        execute(admin, "START SLAVE")
        yield
        execute(admin, "STOP SLAVE")
        execute(admin, "RESET SLAVE ALL")


def test_replica_whose_source_is_down_fails(sandbox, write_env, run_checks, replica_of_a_stopped_source):
    run = run_checks(write_env(mysql_environment(sandbox)), "-k", "mysql and (replica)")
    record = run.record("test_mysql_replica_threads_running")
    assert run.ret == 1
    assert record["message"] == "replica_io_running ('Connecting') == 'Yes' on mysql.ledger"
    assert "Can't connect" in record["measurements"][0]["value"]["last_error"]


@pytest.fixture
def replica(sandbox, tmp_path):
    """A second MariaDB replicating the sandbox's from its first binlog; its IO thread stopped on request."""
    port = free_port()
    pid = sandbox_mariadb.start(tmp_path, port, server_id=2)
    root = pymysql.connect(unix_socket=str(tmp_path / "mariadb" / "mysqld.sock"), user="root", autocommit=True)
    execute(root, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={sandbox.port('mariadb')},"
                  f" MASTER_USER='{sandbox_mariadb.ADMIN_USER}',"
                  f" MASTER_PASSWORD='{sandbox.variables['SANDBOX_MYSQL_ADMIN_PASSWORD']}',"
                  " MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4")
    execute(root, "START SLAVE")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # caught up once the seeded user exists and the threads run
        status = pymysql.connect(unix_socket=str(tmp_path / "mariadb" / "mysqld.sock"), user="root",
                                 cursorclass=pymysql.cursors.DictCursor)
        with status, status.cursor() as cursor:
            cursor.execute("SHOW SLAVE STATUS")
            row = cursor.fetchone()
        if row["Slave_SQL_Running"] == "Yes" and row["Seconds_Behind_Master"] == 0:
            break
        time.sleep(0.2)
    yield port, root
    root.close()
    stop_pid(pid)


def test_streaming_replica_passes_then_stopped_io_thread_fails(sandbox, write_env, run_checks, replica):
    port, root = replica
    path = write_env(mysql_environment(sandbox, port=port, replica_lag_s={"warn": 30, "crit": 300}))
    streaming = run_checks(path, "-k", "mysql and replica")
    record = streaming.record("test_mysql_replica_threads_running")
    assert streaming.ret == 0 and record["outcome"] == "passed", streaming.output
    assert record["measurements"][-1] == {"measure": "replica_lag_s", "value": 0, "op": "<=", "warn": 30.0,
                                          "crit": 300.0, "verdict": "ok"}
    execute(root, "STOP SLAVE IO_THREAD")
    stopped = run_checks(path, "-k", "mysql and replica")
    assert stopped.record("test_mysql_replica_threads_running")["message"] == (
        "replica_io_running ('No') == 'Yes' on mysql.ledger")
