"""Read-only PostgreSQL sessions against the real sandbox: every known way around them, refused.

The forms each took effect before: several statements in one invariant, a session flipped
read-write by one invariant and used by the next, a procedure that commits, and a privileged
monitoring role's COPY TO PROGRAM, ALTER SYSTEM, pg_reload_conf, pg_switch_wal and
pg_terminate_backend. Each test checks a marker table, and that an application session (the
victim) is still alive.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path

import psycopg
import pytest

from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.processes import free_port
from test_postgres_checks import admin_connection, app_connection, postgres_environment

SNEAKY = "opsproof_sneaky"  # the table each DDL form tries to create


@pytest.fixture
def marker(sandbox):
    """An application table with one row, and a maintenance procedure that commits and writes."""
    with app_connection(sandbox) as conn:
        conn.execute("CREATE TABLE opsproof_marker (n int)")
        conn.execute("INSERT INTO opsproof_marker VALUES (1)")
        conn.execute("CREATE PROCEDURE opsproof_archive() LANGUAGE plpgsql AS $$ BEGIN COMMIT;"
                     " SET TRANSACTION READ WRITE; INSERT INTO opsproof_marker VALUES (3); END $$")
    yield
    with app_connection(sandbox) as conn:
        conn.execute("DROP TABLE opsproof_marker")
        conn.execute("DROP PROCEDURE opsproof_archive()")
        conn.execute(f"DROP TABLE IF EXISTS {SNEAKY}")


@pytest.fixture
def victim(sandbox):
    """An idle session of the application (role bankchain), as its connection pool keeps them."""
    conn = app_connection(sandbox, application_name="payments-api")
    yield conn
    conn.close()


def assert_untouched(sandbox, victim) -> None:
    with app_connection(sandbox) as conn:
        assert conn.execute("SELECT n FROM opsproof_marker").fetchall() == [(1,)]
        assert conn.execute("SELECT to_regclass(%s)", (SNEAKY,)).fetchone()[0] is None
    assert victim.execute("SELECT 1").fetchone() == (1,)  # raises when it was terminated


@pytest.fixture
def monitoring_role(sandbox, marker, monkeypatch):
    """``monitoring_role("GRANT pg_signal_backend TO {role}")``: a login role that may read the
    application's tables and statistics, plus what the statements give it; its dsn's password is
    ${TEST_MONITOR_PASSWORD}. Dropped afterwards."""
    created = []

    def create(*grants: str) -> str:
        role, password = f"opsproof_monitor_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
        with admin_connection(sandbox) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            created.append(role)
            conn.execute(f"GRANT pg_monitor TO {role}")
            for grant in grants:
                conn.execute(grant.format(role=role))
        with app_connection(sandbox) as conn:
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        monkeypatch.setenv("TEST_MONITOR_PASSWORD", password)
        return role

    yield create
    with admin_connection(sandbox) as conn:
        for role in created:
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def environment_as(sandbox, role: str | None, tier: str, **settings) -> dict:
    """The sandbox's postgres target, read through ``role`` (None: the application's own role)."""
    if role is not None:
        settings |= {"dsn": sandbox_pg.dsn(sandbox.pg_port, user=role), "password": "${TEST_MONITOR_PASSWORD}"}
    return {**postgres_environment(sandbox, **settings), "tier": tier}


def outcomes(run) -> dict[str, tuple[str, str]]:
    return {r["id"].split("::")[1]: (r["outcome"], r["message"]) for r in run.results["checks"]}


# In name order, on one session: each invariant tries what it can; the later ones find it undone.
FORMS = {
    "a_commit_begin_read_write": f"COMMIT; BEGIN READ WRITE; CREATE TABLE {SNEAKY} (); COMMIT; SELECT 1",
    "b_default_off_then_commit": f"SET default_transaction_read_only = off; COMMIT; CREATE TABLE {SNEAKY} (); SELECT 1",
    "c_begin_read_write": "BEGIN READ WRITE",
    "d_set_config_off": "SELECT set_config('default_transaction_read_only', 'off', false)",
    "e_set_off": "SET default_transaction_read_only = off",
    "f_set_transaction_read_write": "SET TRANSACTION READ WRITE",
    "g_advisory_lock": "SELECT count(*) FROM (SELECT pg_advisory_lock(4242)) AS locked",
    "h_procedure_that_commits": "CALL opsproof_archive()",
    "i_write": "WITH written AS (INSERT INTO opsproof_marker VALUES (2) RETURNING 1) SELECT count(*) FROM written",
    "j_create_table": f"CREATE TABLE {SNEAKY} ()",
    "k_commit": "COMMIT",
    "l_no_lock_held": "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    "m_still_read_only": "SELECT (current_setting('transaction_read_only') = 'on')::int",
}
MULTIPLE = "SyntaxError (SQLSTATE 42601)"  # cannot insert multiple commands into a prepared statement
NO_ROWS = "expected one value, got 0 row(s)"
REFUSED = {
    "a_commit_begin_read_write": MULTIPLE, "b_default_off_then_commit": MULTIPLE, "c_begin_read_write": NO_ROWS,
    "d_set_config_off": "returned str, not a number", "e_set_off": NO_ROWS, "f_set_transaction_read_write": NO_ROWS,
    "h_procedure_that_commits": "InvalidTransactionTermination (SQLSTATE 2D000)",
    "i_write": "ReadOnlySqlTransaction (SQLSTATE 25006)", "j_create_table": "ReadOnlySqlTransaction (SQLSTATE 25006)",
    "k_commit": NO_ROWS,
}


def test_no_form_writes_or_leaves_state_for_the_next_check(sandbox, write_env, run_checks, marker, victim):
    """The application's own role (it owns the database: it could create tables), on tier staging."""
    invariants = {name: {"sql": sql, "max": 1} for name, sql in FORMS.items()}
    invariants["l_no_lock_held"]["max"] = 0
    invariants["m_still_read_only"] = {"sql": FORMS["m_still_read_only"], "min": 1}
    run = run_checks(write_env(environment_as(sandbox, None, "staging", invariants=invariants)),
                     "-k", "postgres and invariant")
    seen = {name: outcomes(run)[f"test_postgres_invariant_holds[main-{name}]"] for name in FORMS}
    assert seen == {name: ("error", f"could not measure on postgres.main: invariant {name}: {REFUSED[name]}")
                    if name in REFUSED else ("passed", "") for name in FORMS}
    assert_untouched(sandbox, victim)


def test_a_session_left_in_copy_is_replaced_for_the_next_check(sandbox, write_env, run_checks):
    invariants = {"a_copy_out": {"sql": "COPY (SELECT 1) TO STDOUT", "max": 1},
                  "b_after_copy": {"sql": "SELECT count(*) FROM users", "min": 1}}
    run = run_checks(write_env(environment_as(sandbox, None, "staging", invariants=invariants)),
                     "-k", "postgres and invariant")
    assert outcomes(run) == {
        "test_postgres_invariant_holds[main-a_copy_out]": (
            "error", "could not measure on postgres.main: invariant a_copy_out: OperationalError (SQLSTATE None)"),
        "test_postgres_invariant_holds[main-b_after_copy]": ("passed", "")}


TERMINATE = ("SELECT count(*) FROM pg_stat_activity"
             " WHERE application_name = 'payments-api' AND pg_terminate_backend(pid)")


def test_least_privileged_role_cannot_terminate_the_application(sandbox, write_env, run_checks, monitoring_role,
                                                                 victim):
    role = monitoring_role()
    run = run_checks(write_env(environment_as(sandbox, role, "production", invariants={
        "terminate": {"sql": TERMINATE, "max": 0}})), "-k", "postgres and (invariant or monitoring_role)")
    assert outcomes(run) == {
        "test_postgres_monitoring_role_is_least_privileged[main]": ("passed", ""),
        "test_postgres_invariant_holds[main-terminate]": (
            "error", "could not measure on postgres.main: invariant terminate: InsufficientPrivilege (SQLSTATE 42501)")}
    assert run.record("test_postgres_monitoring_role_is_least_privileged")["measurements"] == [
        {"measure": "monitoring_role", "value": role},
        {"measure": "monitoring_role_privileges", "value": [], "op": "==", "limit": [], "verdict": "ok"},
        {"measure": "sessions_it_can_signal", "value": 0, "op": "==", "limit": 0, "verdict": "ok"}]
    assert_untouched(sandbox, victim)


def test_application_role_is_warned_it_can_terminate_its_own_sessions(sandbox, write_env, run_checks, victim):
    """PostgreSQL lets any role signal its own sessions: not preventable, so shown (on every tier)."""
    run = run_checks(write_env(environment_as(sandbox, None, "production")), "-k", "postgres and monitoring_role")
    record = run.record("test_postgres_monitoring_role_is_least_privileged")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert re.fullmatch(r"sessions_it_can_signal \(\d+\) == 0 on postgres\.main: other sessions run as role "
                        r"'bankchain' \(or a role it inherits\), and PostgreSQL lets it cancel or terminate them "
                        r"\(warn\)", record["message"]), record["message"]
    assert record["measurements"][2]["value"] >= 1  # at least the victim


@pytest.fixture(scope="module")
def two_phase_cluster(tmp_path_factory):
    """A cluster of its own with max_prepared_transactions = 5 (0, the default, in the sandbox): (port, password)."""
    state_dir, password, port = tmp_path_factory.mktemp("two-phase"), secrets.token_urlsafe(16), free_port()
    data_dir = sandbox_pg.create_cluster(state_dir, port, password)
    with open(data_dir / "postgresql.auto.conf", "a") as auto:
        auto.write("max_prepared_transactions = 5\n")
    sandbox_pg.start(data_dir, port)
    yield port, password
    sandbox_pg.stop(data_dir)
    sandbox_pg.remove(data_dir, state_dir)


def test_prepare_transaction_is_refused_as_it_would_outlive_the_session(sandbox, write_env, run_checks,
                                                                         two_phase_cluster, monkeypatch):
    port, password = two_phase_cluster
    monkeypatch.setenv("TEST_MONITOR_PASSWORD", password)
    sql = "/* a comment */ prepare -- and another\n TRANSACTION 'opsproof-left-behind'"
    run = run_checks(write_env(environment_as(
        sandbox, None, "staging", dsn=sandbox_pg.dsn(port, user=sandbox_pg.ADMIN_USER, database="postgres"),
        password="${TEST_MONITOR_PASSWORD}", invariants={"left_behind": {"sql": sql, "max": 0}})),
        "-k", "postgres and invariant")
    assert run.record("test_postgres_invariant_holds")["message"] == (
        "could not measure on postgres.main: invariant left_behind: PREPARE TRANSACTION refused: it outlives the session")
    with psycopg.connect(sandbox_pg.dsn(port, user=sandbox_pg.ADMIN_USER, database="postgres"), password=password,
                         connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


# What each privileged role holds, as the evidence and the refusal name it.
PRIVILEGED = {
    "superuser": (None, "superuser"),
    "pg_execute_server_program": ("GRANT pg_execute_server_program TO {role}", "pg_execute_server_program"),
    "pg_write_server_files": ("GRANT pg_write_server_files TO {role}", "pg_write_server_files"),
    "pg_signal_backend": ("GRANT pg_signal_backend TO {role}", "pg_signal_backend"),
    "replication": ("ALTER ROLE {role} REPLICATION", "replication"),
    "pg_reload_conf": ("GRANT EXECUTE ON FUNCTION pg_reload_conf() TO {role}", "EXECUTE pg_reload_conf()"),
}


@pytest.fixture(params=list(PRIVILEGED))
def privileged(request, sandbox, monitoring_role, monkeypatch):
    """(role, what it holds): the sandbox's superuser, or a monitoring role given one privilege."""
    grant, holds = PRIVILEGED[request.param]
    if grant is None:
        monkeypatch.setenv("TEST_MONITOR_PASSWORD", sandbox.pg_admin_password)
        return sandbox_pg.ADMIN_USER, holds
    return monitoring_role(grant), holds


def side_effects(sandbox) -> tuple:
    with admin_connection(sandbox) as conn:
        return conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn()),"
                            " (SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem')").fetchone()


def test_privileged_role_is_refused_on_production_before_any_statement(sandbox, write_env, run_checks, privileged,
                                                                       victim, tmp_path):
    role, holds = privileged
    ran = Path("/tmp") / f"opsproof-copy-program-{uuid.uuid4().hex}"  # /tmp: the server's user may write there
    invariants = {
        "copy_program": {"sql": f"COPY (SELECT 1) TO PROGRAM 'touch {ran}'", "max": 0},
        "alter_system": {"sql": "ALTER SYSTEM SET work_mem = '77MB'", "max": 0},
        "reload_conf": {"sql": "SELECT count(*) FROM (SELECT pg_reload_conf()) AS reloaded", "max": 0},
        "switch_wal": {"sql": "SELECT count(*) FROM (SELECT pg_switch_wal()) AS switched", "max": 0},
        "terminate": {"sql": TERMINATE, "max": 0},
    }
    with app_connection(sandbox) as conn:
        conn.execute("UPDATE opsproof_marker SET n = 1")  # WAL written since the last switch: a switch would show
    before = side_effects(sandbox)
    run = run_checks(write_env(environment_as(sandbox, role, "production", invariants=invariants)), "-k", "postgres")
    refusal = (f"refused on tier production: monitoring role '{role}' holds {holds}, which acts outside a read-only "
               "transaction")
    records = run.results["checks"]
    errors = [r for r in records if r["outcome"] == "error"]
    assert run.ret == 1 and [r["message"] for r in errors] == [f"could not measure on postgres.main: {refusal}"]
    assert all(r["outcome"] == "skipped" and r["message"].startswith(f"postgres.main is unreachable: {refusal}")
               for r in records if r not in errors)
    assert len(records) == 10 + len(invariants)  # ten checks, and the invariant check once per invariant
    assert not ran.exists()
    assert side_effects(sandbox) == before
    assert_untouched(sandbox, victim)


def test_privileged_role_is_warned_on_staging(sandbox, write_env, run_checks, privileged):
    role, holds = privileged
    run = run_checks(write_env(environment_as(sandbox, role, "staging")), "-k", "postgres and monitoring_role")
    record = run.record("test_postgres_monitoring_role_is_least_privileged")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert record["message"].startswith(
        f"monitoring_role_privileges (['{holds}']) == [] on postgres.main: role '{role}' acts outside a read-only "
        "transaction; tier production refuses it (warn)")
    assert record["measurements"][:2] == [
        {"measure": "monitoring_role", "value": role},
        {"measure": "monitoring_role_privileges", "value": [holds], "op": "==", "limit": [], "verdict": "warn"}]


def test_read_write_sandbox_session_still_takes_one_statement_per_call(sandbox, write_env, run_checks):
    invariants = {"two": {"sql": "SELECT 1; SELECT 2", "max": 2}}
    run = run_checks(write_env(environment_as(sandbox, None, "sandbox", invariants=invariants)),
                     "-k", "postgres and invariant")
    assert run.record("test_postgres_invariant_holds")["message"] == (
        f"could not measure on postgres.main: invariant two: {MULTIPLE}")

