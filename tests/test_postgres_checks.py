"""PostgreSQL checks against the real sandbox: pass when healthy, fail with evidence on real faults."""

from __future__ import annotations

import re
import threading
import time

import psycopg
import pytest

from conftest import sandbox_environment
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.thresholds import show_value

RUNBOOK_INVARIANTS = {
    "failed_transactions_24h": {
        "sql": "SELECT count(*) FROM transactions WHERE status = 'failed' AND created_at > now() - interval '24 hours'",
        "max": 50},
    "open_compliance_alerts": {"sql": "SELECT count(*) FROM compliance_alerts WHERE status = 'open'",
                               "warn": 10, "crit": 25},
}


def postgres_environment(sandbox, **settings) -> dict:
    environment = sandbox_environment(sandbox)
    environment["postgres"]["main"].update(settings)
    return environment


def app_connection(sandbox, **kwargs):
    return psycopg.connect(sandbox.pg_dsn, password=sandbox.pg_password, autocommit=True, connect_timeout=5, **kwargs)


def admin_connection(sandbox):
    return psycopg.connect(sandbox_pg.dsn(sandbox.pg_port, user=sandbox_pg.ADMIN_USER),
                           password=sandbox.pg_admin_password, autocommit=True, connect_timeout=5)


def test_every_postgres_check_passes_on_the_healthy_sandbox(sandbox, write_env, run_checks):
    environment = postgres_environment(
        sandbox, expect_role="primary", connections_pct={"warn": 80, "crit": 95}, long_running_s=300,
        statement_mean_ms={"warn": 1000, "crit": 5000}, database_size_bytes={"crit": 10**9},
        invariants=RUNBOOK_INVARIANTS)
    run = run_checks(write_env(environment), "-k", "postgres and not replica and not replication")
    assert run.ret == 0, run.output
    role = run.record("test_postgres_monitoring_role_is_least_privileged")
    assert role["outcome"] == "skipped" and role["message"] == "postgres.main has read-write sessions (tier sandbox)"
    assert {r["outcome"] for r in run.results["checks"] if r is not role} == {"passed"}
    assert len(run.results["checks"]) == 10
    assert run.record("test_postgres_role_is_expected")["measurements"][0]["value"] == "primary"
    assert run.record("test_postgres_invariant_holds")["measurements"][0] == {
        "measure": "failed_transactions_24h", "value": 6, "op": "<=", "limit": 50.0, "verdict": "ok"}
    sizes = run.record("test_postgres_database_size_within_threshold")["measurements"]
    assert sizes[0]["value"][0]["table"] == "public.transactions" and sizes[1]["value"] > 1_000_000


def test_unexpected_role_fails(sandbox, write_env, run_checks):
    run = run_checks(write_env(postgres_environment(sandbox, expect_role="replica")), "-k", "postgres and (role)")
    assert run.ret == 1
    assert run.record("test_postgres_role_is_expected")["message"] == "role ('primary') == 'replica' on postgres.main"


@pytest.fixture
def held_connections(sandbox):
    """Hold 32 of the sandbox's 40 connections open (the application's pool leaking)."""
    held = [app_connection(sandbox) for _ in range(32)]
    yield held
    for conn in held:
        conn.close()


def test_held_connections_fail_connections_pct(sandbox, write_env, run_checks, held_connections):
    run = run_checks(write_env(postgres_environment(sandbox, connections_pct={"warn": 50, "crit": 80})),
                     "-k", "postgres and (connections)")
    record = run.record("test_postgres_connections_within_threshold")
    pct = record["measurements"][-1]["value"]
    assert run.ret == 1 and record["outcome"] == "failed" and pct >= 82.5
    assert record["message"] == f"connections_pct ({show_value(pct)}) <= 80 on postgres.main (crit)"


@pytest.fixture
def long_sessions(sandbox):
    """One session sleeping in pg_sleep, one idle inside an open transaction, both 1.5 s old."""
    sleeper, idle = app_connection(sandbox), app_connection(sandbox)
    thread = threading.Thread(target=lambda: _cancelled(sleeper, "SELECT pg_sleep(60)"), daemon=True)
    thread.start()
    idle.execute("BEGIN")
    idle.execute("SELECT count(*) FROM users")
    time.sleep(1.5)
    yield
    sleeper.cancel_safe()
    thread.join(5)
    idle.execute("ROLLBACK")
    sleeper.close(), idle.close()


def _cancelled(conn, sql):
    try:
        conn.execute(sql)
    except psycopg.errors.QueryCanceled:
        pass


def test_long_running_query_and_idle_transaction_fail(sandbox, write_env, run_checks, long_sessions):
    run = run_checks(write_env(postgres_environment(sandbox, long_running_s=1)), "-k", "postgres and (long)")
    assert run.ret == 1
    query = run.record("test_postgres_has_no_long_running_queries")
    idle = run.record("test_postgres_has_no_long_idle_transactions")
    assert re.fullmatch(r"oldest_query_s \(\d\.\d\) <= 1 on postgres\.main", query["message"]), query["message"]
    assert re.fullmatch(r"oldest_idle_transaction_s \(\d\.\d\) <= 1 on postgres\.main", idle["message"])
    sessions = query["measurements"][0]["value"]
    assert len(sessions) == 1 and sessions[0]["user"] == "bankchain" and sessions[0]["state"] == "active"


@pytest.fixture
def slow_statement(sandbox):
    """A statement averaging 300 ms in pg_stat_statements; the statistics are reset afterwards."""
    with app_connection(sandbox) as conn:
        conn.execute("SELECT pg_sleep(0.3)")
    yield
    with admin_connection(sandbox) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def test_slow_statement_fails_statement_mean_ms(sandbox, write_env, run_checks, slow_statement):
    run = run_checks(write_env(postgres_environment(sandbox, statement_mean_ms={"crit": 250})),
                     "-k", "postgres and statements")
    record = run.record("test_postgres_statements_within_mean_time")
    slowest = record["measurements"][0]["value"][0]
    assert record["outcome"] == "failed" and run.ret == 0  # a p2 check: reported, not gating at p1
    assert slowest["query"] == "SELECT pg_sleep($1)" and slowest["mean_ms"] >= 300
    assert record["message"] == f"statement_mean_ms ({show_value(slowest['mean_ms'])}) <= 250 on postgres.main (crit)"


def test_statements_skip_where_pg_stat_statements_is_absent(sandbox, write_env, run_checks):
    dsn = sandbox.pg_dsn.rsplit("/", 1)[0] + "/postgres"  # the extension is created in bankchain only
    run = run_checks(write_env(postgres_environment(sandbox, dsn=dsn, statement_mean_ms={"crit": 250})),
                     "-k", "postgres and (statements)")
    record = run.record("test_postgres_statements_within_mean_time")
    assert run.ret == 0 and record["outcome"] == "skipped"
    assert record["message"] == "pg_stat_statements is not installed in the database of postgres.main"


def test_database_over_its_size_fails(sandbox, write_env, run_checks):
    run = run_checks(write_env(postgres_environment(sandbox, database_size_bytes={"warn": 1000, "crit": 2000})),
                     "-k", "postgres and (size)")
    record = run.record("test_postgres_database_size_within_threshold")
    size = record["measurements"][1]["value"]
    assert record["outcome"] == "failed" and not record["gating"]
    assert record["message"] == f"database_size_bytes ({size}) <= 2000 on postgres.main (crit)"


@pytest.fixture
def failed_transactions(sandbox):
    """60 more transactions failed in the last hour (a payment provider outage); removed afterwards."""
    with app_connection(sandbox) as conn:
        conn.execute("INSERT INTO transactions (wallet_id, amount, status, created_at)"
                     " SELECT 1, 1.00, 'failed', now() - interval '5 minutes' FROM generate_series(1, 60)")
    yield
    with app_connection(sandbox) as conn:
        conn.execute("DELETE FROM transactions WHERE amount = 1.00 AND created_at > now() - interval '1 hour'"
                     " AND status = 'failed'")


def test_failed_transactions_over_max_fail_the_invariant(sandbox, write_env, run_checks, failed_transactions):
    run = run_checks(write_env(postgres_environment(sandbox, invariants=RUNBOOK_INVARIANTS)),
                     "-k", "postgres and invariant")
    assert run.ret == 1
    assert run.record("test_postgres_invariant_holds")["message"] == (
        "failed_transactions_24h (66) <= 50 on postgres.main")
    assert run.record("test_postgres_invariant_holds", "main")["outcome"] == "failed"
    alerts = [r for r in run.results["checks"] if r["id"].endswith("[main-open_compliance_alerts]")]
    assert alerts[0]["outcome"] == "passed"


def test_invariant_below_its_min_and_past_crit(sandbox, write_env, run_checks):
    invariants = {"users_present": {"sql": "SELECT count(*) FROM users", "min": 1000},
                  "open_alerts": {"sql": "SELECT count(*) FROM compliance_alerts WHERE status = 'open'",
                                  "warn": 1, "crit": 2}}
    run = run_checks(write_env(postgres_environment(sandbox, invariants=invariants)), "-k", "postgres and (invariant)")
    messages = sorted(r["message"] for r in run.results["checks"])
    assert messages == ["open_alerts (3) <= 2 on postgres.main (crit)", "users_present (500) >= 1000 on postgres.main"]


def test_erroring_invariant_names_it_not_its_sql(sandbox, write_env, run_checks):
    invariants = {"ledger_balance": {"sql": "SELECT sum(amount) FROM ledger_secret_s3cr3t", "max": 0}}
    run = run_checks(write_env(postgres_environment(sandbox, invariants=invariants)), "-k", "postgres and (invariant)")
    record = run.record("test_postgres_invariant_holds")
    assert run.ret == 1 and record["outcome"] == "error"
    assert record["message"] == (
        "could not measure on postgres.main: invariant ledger_balance: UndefinedTable (SQLSTATE 42P01)")
    assert "s3cr3t" not in run.output


def test_invariant_that_writes_is_refused_outside_the_sandbox_tier(sandbox, write_env, run_checks):
    sql = ("WITH written AS (INSERT INTO settlements (batch, amount, status) VALUES ('sneaky', 1, 'pending')"
           " RETURNING 1) SELECT count(*) FROM written")
    environment = postgres_environment(sandbox, invariants={"sneaky_write": {"sql": sql, "max": 0}})
    run = run_checks(write_env({**environment, "tier": "staging"}), "-k", "postgres and (invariant)")
    record = run.record("test_postgres_invariant_holds")
    assert run.ret == 1 and record["outcome"] == "error"
    assert record["message"] == ("could not measure on postgres.main: invariant sneaky_write: "
                                 "ReadOnlySqlTransaction (SQLSTATE 25006)")
    with app_connection(sandbox) as conn:
        assert conn.execute("SELECT count(*) FROM settlements WHERE batch = 'sneaky'").fetchone()[0] == 0
