"""Read-only MySQL/MariaDB sessions against the sandbox's MariaDB: every known way around them, refused.

``SET SESSION TRANSACTION READ ONLY`` alone was undone by one invariant (``SET SESSION TRANSACTION
READ WRITE``) and written through by the next; ``START TRANSACTION READ ONLY`` alone lets DDL commit
it and run. Each test checks a marker table and that an application session (the victim) is alive.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path

import pytest

from opsproof.monitoring_role import MonitoringRole
from test_mysql_checks import connect, execute, mysql_environment

SNEAKY = "opsproof_sneaky"


@pytest.fixture(autouse=True)
def app_password(monkeypatch, sandbox):
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", sandbox.variables["SANDBOX_MYSQL_PASSWORD"])


@pytest.fixture
def marker(sandbox):
    """An application table with one row, and a procedure that commits, sets the session read-write, writes."""
    with connect(sandbox, admin=True) as admin:
        execute(admin, "CREATE TABLE opsproof_marker (n INT)")
        execute(admin, "INSERT INTO opsproof_marker VALUES (1)")
        execute(admin, "CREATE PROCEDURE opsproof_archive() BEGIN COMMIT; SET SESSION TRANSACTION READ WRITE;"
                       " INSERT INTO opsproof_marker VALUES (3); END")
    yield
    with connect(sandbox, admin=True) as admin:
        execute(admin, "DROP PROCEDURE opsproof_archive")
        execute(admin, "DROP TABLE opsproof_marker")
        execute(admin, f"DROP TABLE IF EXISTS {SNEAKY}")


@pytest.fixture
def victim(sandbox):
    """An idle session of the application's account, as its pool keeps them."""
    conn = connect(sandbox)
    yield conn
    conn.close()


def assert_untouched(sandbox, victim) -> None:
    with connect(sandbox, admin=True) as admin:
        assert execute(admin, "SELECT n FROM opsproof_marker") == ((1,),)
        assert execute(admin, f"SHOW TABLES LIKE '{SNEAKY}'") == ()
        assert execute(admin, "SELECT @@global.max_connections") == ((40,),)
    assert execute(victim, "SELECT 1") == ((1,),)  # raises when it was killed


@pytest.fixture
def account(sandbox, marker, monkeypatch):
    """``account("GRANT FILE ON *.* TO {account}")``: a monitoring account (SELECT on the application's
    database, PROCESS, SLAVE MONITOR) plus what the statements give it ({role}: a role made for it);
    its password is ${TEST_MONITOR_PASSWORD}. Dropped afterwards."""
    created = []

    def create(*grants: str) -> str:
        name, password = f"opsproof_mon_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
        names = {"account": f"'{name}'@'127.0.0.1'", "role": f"{name}_role"}
        with connect(sandbox, admin=True) as admin:
            execute(admin, f"CREATE USER {names['account']} IDENTIFIED BY '{password}'")
            execute(admin, f"CREATE ROLE {names['role']}")
            created.append(names)
            execute(admin, f"GRANT SELECT ON bankchain.* TO {names['account']}")
            execute(admin, f"GRANT PROCESS, SLAVE MONITOR ON *.* TO {names['account']}")
            for grant in grants:
                execute(admin, grant.format(**names))
        monkeypatch.setenv("TEST_MONITOR_PASSWORD", password)
        return name

    yield create
    with connect(sandbox, admin=True) as admin:
        for names in created:
            execute(admin, f"DROP USER {names['account']}")
            execute(admin, f"DROP ROLE {names['role']}")


def environment_as(sandbox, name: str | None, tier: str, **settings) -> dict:
    """The sandbox's mysql target, read through account ``name`` (None: the application's own)."""
    if name is not None:
        settings |= {"user": name, "password": "${TEST_MONITOR_PASSWORD}"}
    return {**mysql_environment(sandbox, **settings), "tier": tier}


def outcomes(run) -> dict[str, tuple[str, str]]:
    return {r["id"].split("::")[1]: (r["outcome"], r["message"]) for r in run.results["checks"]}


# In name order, on one session: each invariant tries what it can; the later ones find it undone.
FORMS = {
    "a_multiple_statements": "SET SESSION TRANSACTION READ WRITE; INSERT INTO opsproof_marker VALUES (2)",
    "b_set_read_write": "SET SESSION TRANSACTION READ WRITE",
    "c_insert": "INSERT INTO opsproof_marker VALUES (2)",
    "d_create_table": f"CREATE TABLE {SNEAKY} (n INT)",
    "e_temporary_table": "CREATE TEMPORARY TABLE opsproof_marker (n INT)",
    "f_lock_tables": "LOCK TABLES opsproof_marker WRITE",
    "g_autocommit_off": "SET autocommit = 0",
    "h_no_timeout": "SET SESSION max_statement_time = 0",
    "i_get_lock": "SELECT GET_LOCK('opsproof-test', 0)",
    "j_no_lock_held": "SELECT IS_USED_LOCK('opsproof-test') IS NOT NULL",
    "k_still_read_only": "SELECT @@tx_read_only",
    "l_timeout_kept": "SELECT @@max_statement_time > 0",
    "m_insert_again": "INSERT INTO opsproof_marker VALUES (2)",
}
READ_ONLY = "OperationalError (1792)"  # Cannot execute statement in a READ ONLY transaction
NO_ROWS = "expected one value, got 0 row(s)"
REFUSED = {
    "a_multiple_statements": "ProgrammingError (1064)", "b_set_read_write": NO_ROWS, "c_insert": READ_ONLY,
    "d_create_table": READ_ONLY, "e_temporary_table": READ_ONLY, "f_lock_tables": READ_ONLY,
    "g_autocommit_off": NO_ROWS, "h_no_timeout": NO_ROWS, "m_insert_again": READ_ONLY,
}


def test_no_form_writes_or_leaves_state_for_the_next_check(sandbox, write_env, run_checks, account, victim):
    """An application account that may also run migrations (DDL), on tier staging."""
    name = account("GRANT INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE TEMPORARY TABLES, LOCK TABLES"
                   " ON bankchain.* TO {account}")
    invariants = {name: {"sql": sql, "max": 1} for name, sql in FORMS.items()}
    invariants["j_no_lock_held"]["max"] = 0
    invariants["k_still_read_only"] = {"sql": FORMS["k_still_read_only"], "min": 1}
    invariants["l_timeout_kept"] = {"sql": FORMS["l_timeout_kept"], "min": 1}
    run = run_checks(write_env(environment_as(sandbox, name, "staging", invariants=invariants)),
                     "-k", "mysql and invariant")
    seen = {name: outcomes(run)[f"test_mysql_invariant_holds[ledger-{name}]"] for name in FORMS}
    assert seen == {name: ("error", f"could not measure on mysql.ledger: invariant {name}: {REFUSED[name]}")
                    if name in REFUSED else ("passed", "") for name in FORMS}
    assert_untouched(sandbox, victim)


def test_least_privileged_account_cannot_kill_the_application(sandbox, write_env, run_checks, account, victim):
    name = account()
    invariants = {"kill": {"sql": f"KILL {victim.thread_id()}", "max": 0}}
    run = run_checks(write_env(environment_as(sandbox, name, "production", invariants=invariants)),
                     "-k", "mysql and (invariant or monitoring_role)")
    assert outcomes(run) == {
        "test_mysql_monitoring_role_is_least_privileged[ledger]": ("passed", ""),
        "test_mysql_invariant_holds[ledger-kill]": (
            "error", "could not measure on mysql.ledger: invariant kill: OperationalError (1095)")}  # not its thread
    assert_untouched(sandbox, victim)


def test_application_account_is_warned_it_can_kill_its_own_sessions(sandbox, write_env, run_checks, marker,
                                                                     victim):
    run = run_checks(write_env(environment_as(sandbox, None, "production")), "-k", "mysql and monitoring_role")
    record = run.record("test_mysql_monitoring_role_is_least_privileged")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert re.fullmatch(r"sessions_it_can_kill \(\d+\) == 0 on mysql\.ledger: other sessions run as the user of "
                        r"bankchain@127\.0\.0\.1, and the server lets it KILL them \(warn\)", record["message"])


PRIVILEGED = {
    "SUPER": ("GRANT SUPER ON *.* TO {account}", "SUPER"),
    "FILE": ("GRANT FILE ON *.* TO {account}", "FILE"),
    "CONNECTION ADMIN": ("GRANT CONNECTION ADMIN ON *.* TO {account}", "CONNECTION ADMIN"),
    "EXECUTE": ("GRANT EXECUTE ON bankchain.* TO {account}", "EXECUTE ON `bankchain`.*"),
    "FILE through a role": ("GRANT FILE ON *.* TO {role}; GRANT {role} TO {account};"
                            " SET DEFAULT ROLE {role} FOR {account}", "FILE"),
}


@pytest.fixture(params=list(PRIVILEGED))
def privileged(request, account):
    grants, holds = PRIVILEGED[request.param]
    return account(*grants.split("; ")), holds


def test_privileged_account_is_refused_on_production_before_any_statement(sandbox, write_env, run_checks,
                                                                           privileged, victim):
    name, holds = privileged
    outfile = Path("/tmp") / f"opsproof-outfile-{uuid.uuid4().hex}"
    invariants = {
        "outfile": {"sql": f"SELECT 1 INTO OUTFILE '{outfile}'", "max": 0},
        "kill": {"sql": f"KILL {victim.thread_id()}", "max": 0},
        "procedure": {"sql": "CALL opsproof_archive()", "max": 0},
        "set_global": {"sql": "SET GLOBAL max_connections = 39", "max": 0},
    }
    run = run_checks(write_env(environment_as(sandbox, name, "production", invariants=invariants)), "-k", "mysql")
    refusal = (f"refused on tier production: monitoring role '{name}@127.0.0.1' holds {holds}, which acts outside a "
               "read-only transaction")
    records = run.results["checks"]
    errors = [r for r in records if r["outcome"] == "error"]
    assert run.ret == 1 and [r["message"] for r in errors] == [f"could not measure on mysql.ledger: {refusal}"]
    assert all(r["outcome"] == "skipped" and r["message"].startswith(f"mysql.ledger is unreachable: {refusal}")
               for r in records if r not in errors)
    assert len(records) == 5 + len(invariants)  # five checks, and the invariant check once per invariant
    assert not outfile.exists()
    assert_untouched(sandbox, victim)


def test_privileged_account_is_warned_on_staging(sandbox, write_env, run_checks, privileged):
    name, holds = privileged
    run = run_checks(write_env(environment_as(sandbox, name, "staging")), "-k", "mysql and monitoring_role")
    record = run.record("test_mysql_monitoring_role_is_least_privileged")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert record["message"].startswith(
        f"monitoring_role_privileges (['{holds}']) == [] on mysql.ledger: account {name}@127.0.0.1 acts outside a "
        "read-only transaction; tier production refuses it (warn)")


def test_read_write_sandbox_session_still_takes_one_statement_per_call(sandbox, write_env, run_checks):
    run = run_checks(write_env(environment_as(sandbox, None, "sandbox", invariants={
        "two": {"sql": "SELECT 1; SELECT 2", "max": 2}})), "-k", "mysql and invariant")
    assert run.record("test_mysql_invariant_holds")["message"] == (
        "could not measure on mysql.ledger: invariant two: ProgrammingError (1064)")


def test_grants_are_read_from_show_grants_lines():
    from opsproof.mysql_roles import role_of

    lines = ["GRANT USAGE ON *.* TO `m`@`%` IDENTIFIED BY PASSWORD '*0123'", "GRANT `ops` TO `m`@`%`",
             "GRANT SELECT (id, status), INSERT ON `app`.`payments` TO `m`@`%`",
             "GRANT PROCESS, BINLOG ADMIN, REPLICATION SLAVE ADMIN ON *.* TO `ops`",
             "GRANT EXECUTE ON PROCEDURE `app`.`archive` TO `m`@`%`", "GRANT PROXY ON ''@'%' TO 'm'@'%'",
             "SET DEFAULT ROLE `ops` FOR `m`@`%`"]
    role = role_of([{"Grants for m@%": line} for line in lines], 2)
    assert role == MonitoringRole("m@%", ("BINLOG ADMIN", "REPLICATION SLAVE ADMIN",
                                          "EXECUTE ON PROCEDURE `app`.`archive`"), 2)
