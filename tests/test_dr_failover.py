"""A failover drill of a real system: the sandbox's primary stopped, its real streaming replica promoted, the
demo API repointed, RPO measured by a marker row; the rollback rebuilds the old topology."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from opsproof import sandbox as sandbox_module
from opsproof.processes import free_port, unprivileged_user
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.drill import start_database
from opsproof.sandbox.processes import running

AS_SERVER_USER = "runuser -u postgres -- " if unprivileged_user() else ""  # PostgreSQL refuses root


@pytest.fixture
def healthy(sandbox, monkeypatch):
    """The session's sandbox; whatever the drill did, it is on its own primary again afterwards."""
    monkeypatch.setenv("DR_PG_PASSWORD", sandbox.pg_password)
    monkeypatch.setenv("DR_PG_ADMIN_PASSWORD", sandbox.pg_admin_password)
    monkeypatch.setenv("OPSPROOF_OPERATOR", "dr-test")
    yield sandbox
    state = sandbox_module.load(Path(sandbox.state_dir))
    start_database(state, None)  # the rollback's job; here only so a failed test leaves the session usable
    httpx.post(f"{sandbox.api_url}/_sandbox/database", json={"dsn": sandbox.pg_dsn}, timeout=5)
    sandbox.processes = state.processes  # the primary's new pid, for the tests after these


class Standby:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = data_dir, port

    def admin(self, box):
        return psycopg.connect(sandbox_pg.dsn(self.port, user=sandbox_pg.ADMIN_USER), password=box.pg_admin_password,
                               autocommit=True, connect_timeout=5)


@pytest.fixture
def standby(healthy):
    """A streaming replica of the sandbox's primary (pg_basebackup -R), caught up before the drill."""
    parent = Path(tempfile.mkdtemp(prefix="opsproof-dr-standby-"))
    user = unprivileged_user()
    if user:
        os.chmod(parent, 0o755)
        os.chown(parent, user.pw_uid, user.pw_gid)
    data_dir, port = parent / "data", free_port()
    conninfo = (f"host=127.0.0.1 port={healthy.pg_port} user={sandbox_pg.ADMIN_USER} "
                f"password={healthy.pg_admin_password} application_name=dr_standby")
    result = sandbox_pg._as_server_user([str(sandbox_pg.bindir() / "pg_basebackup"), "-d", conninfo,
                                         "-D", str(data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"])
    assert result.returncode == 0, result.stderr
    with open(data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write(f"primary_conninfo = '{conninfo}'\n")
    sandbox_pg.start(data_dir, port)
    made = Standby(data_dir, port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with psycopg.connect(sandbox_pg.dsn(healthy.pg_port, user=sandbox_pg.ADMIN_USER),
                             password=healthy.pg_admin_password) as conn:
            if conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'dr_standby' "
                            "AND state = 'streaming'").fetchone()[0]:
                break
        time.sleep(0.2)
    yield made
    sandbox_pg.stop(data_dir)
    shutil.rmtree(parent, ignore_errors=True)


def repoint(box, port: int) -> str:
    body = json.dumps({"dsn": sandbox_pg.dsn(port)})
    return f"curl -fsS --max-time 5 -X POST --data '{body}' {box.api_url}/_sandbox/database"


def pg_ctl(data_dir, action: str) -> str:
    return f"{AS_SERVER_USER}{sandbox_pg.bindir() / 'pg_ctl'} -D {data_dir} -m fast -w -t 20 {action}"


def failover_environment(box, standby: Standby) -> dict:
    """The sandbox's primary, its replica and the demo API; the scenario fails the API over to the replica."""
    admin = f"postgresql://{sandbox_pg.ADMIN_USER}@127.0.0.1:{standby.port}/{sandbox_pg.DATABASE}"
    return {
        "tier": "sandbox",
        "http": {"api": {"url": box.api_url, "timeout_s": 3,
                         "health": {"path": "/health", "status": 200, "json": {"status": "healthy"}}}},
        "postgres": {"main": {"dsn": box.pg_dsn, "password": "${DR_PG_PASSWORD}", "connect_timeout_s": 2},
                     "standby": {"dsn": admin, "password": "${DR_PG_ADMIN_PASSWORD}", "connect_timeout_s": 2}},
        "dr": {"failover": {
            "sandbox_dir": box.state_dir,
            "acts_on": ["postgres.main", "postgres.standby", "http.api"],
            "outage_starts_at": "stop_primary",
            "steps": [
                {"name": "stop_primary", "type": "run", "target": "postgres.main", "timeout": "30s",
                 "command": pg_ctl(box.pg_data_dir, "stop")},
                {"name": "promote_replica", "type": "promote", "target": "postgres.standby", "timeout": "30s"},
                {"name": "repoint_api", "type": "run", "target": "http.api", "timeout": "10s",
                 "command": repoint(box, standby.port)},
                {"name": "api_healthy", "type": "wait_healthy", "targets": ["http.api", "postgres.standby"],
                 "timeout": "30s", "every": "0.2s"},
            ],
            "verify": {"suite": "smoke", "targets": ["http.api"], "invariants": {
                "users": {"target": "postgres.standby", "sql": "SELECT count(*) FROM users", "min": 500},
                "no_negative_balances": {"target": "postgres.standby",
                                         "sql": "SELECT count(*) FROM wallets WHERE balance < 0", "max": 0}}},
            "rto": "1m", "rpo": "0s",
            "rpo_measure": {"marker": {"write": "postgres.main", "read": "postgres.standby"}},
            "rollback": [
                {"name": "stop_replica", "type": "run", "target": "postgres.standby", "timeout": "30s",
                 "command": pg_ctl(standby.data_dir, "stop")},
                {"name": "start_primary", "type": "sandbox", "action": "start_database", "target": "postgres.main",
                 "timeout": "1m"},
                {"name": "repoint_back", "type": "run", "target": "http.api", "timeout": "10s",
                 "command": repoint(box, box.pg_port)},
            ],
        }},
    }


def drill(run) -> dict:
    return run.record("test_dr_drill_completes_every_step", "failover")["drill"]


def assert_back_on_the_primary(box) -> None:
    """The rollback rebuilt the old topology: the recorded primary runs again and the API uses it."""
    state = sandbox_module.load(Path(box.state_dir))
    assert running("postgres", state.processes["postgres"])  # the same cluster, restarted and recorded
    assert state.pg_data_dir == box.pg_data_dir
    health = httpx.get(f"{box.api_url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    with psycopg.connect(box.pg_dsn, password=box.pg_password, connect_timeout=5) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False


def test_failover_to_a_streaming_replica_loses_nothing_and_rolls_back(healthy, standby, write_env, run_checks):
    run = run_checks(write_env(failover_environment(healthy, standby)), "--suite", "dr", "--allow-destructive",
                     "--confirm-drill", "failover")
    assert run.ret == 0, run.output
    record = drill(run)
    assert [(s["name"], s["kind"], s["outcome"]) for s in record["steps"]] == [
        ("measure_rpo_before", "measure", "passed"), ("stop_primary", "run", "passed"),
        ("promote_replica", "promote", "passed"), ("repoint_api", "run", "passed"),
        ("api_healthy", "wait_healthy", "passed"), ("verify", "verify", "passed"),
        ("measure_rpo_after", "measure", "passed")]
    assert record["steps"][2]["detail"].startswith("postgres.standby promoted: out of recovery after ")
    assert [(s["name"], s["outcome"]) for s in record["rollback"]] == [
        ("stop_replica", "passed"), ("start_primary", "passed"), ("repoint_back", "passed")]
    assert record["outcome"] == "passed" and record["cleanup_confirmed"] is True and record["cleanup_left"] == []
    assert 0 < record["rto_achieved_s"] <= 60 and record["rpo_achieved_s"] == 0.0
    marker = next(v for v in record["verifications"] if v["measure"] == "rpo_marker")
    assert marker["value"] == "found" and marker["written_to"] == "postgres.main"
    assert record["confirmed_by"] == "dr-test (--allow-destructive --confirm-drill failover)"
    assert record["systems"] == ["postgres.main", "postgres.standby", "http.api"]
    assert record["overhead_s"] < 1.0  # the runner's own time beyond its timed steps
    outcomes = {r["check"]: r["outcome"] for r in run.results["checks"]}
    assert outcomes == {"test_dr_drill_completes_every_step": "passed",
                        "test_dr_recovered_systems_pass_verification": "passed",
                        "test_dr_recovery_time_is_within_rto": "passed", "test_dr_data_loss_is_within_rpo": "passed",
                        "test_dr_rollback_leaves_nothing_undone": "passed"}
    assert_back_on_the_primary(healthy)


def test_failover_to_a_replica_that_fell_behind_loses_the_marker_and_fails_on_rpo(
        healthy, standby, write_env, run_checks):
    # Pausing replay alone loses nothing: promotion still replays the WAL the replica has received (observed
    # on PostgreSQL 15). A replica that fell behind has not received it: its WAL receiver is cut (it stops once
    # the startup process rereads primary_conninfo, which a paused replay would delay), then replay is paused.
    with standby.admin(healthy) as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 20
        while conn.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone()[0]:
            assert time.monotonic() < deadline, "the replica's WAL receiver did not stop"
            time.sleep(0.05)
        conn.execute("SELECT pg_wal_replay_pause()")
    run = run_checks(write_env(failover_environment(healthy, standby)), "--suite", "dr", "--allow-destructive",
                     "--confirm-drill", "failover")
    assert run.ret == 1
    record = drill(run)
    assert record["outcome"] == "failed" and record["failed_step"] is None  # every step ran; the data did not
    marker = next(v for v in record["verifications"] if v["measure"] == "rpo_marker")
    assert (marker["value"], marker["verdict"]) == ("lost", "crit") and record["rpo_achieved_s"] is None
    rpo = run.record("test_dr_data_loss_is_within_rpo", "failover")
    assert rpo["outcome"] == "failed" and rpo["message"] == (
        f"rpo_marker ('lost') == 'found' on dr.failover: marker {marker['marker']} written to postgres.main at "
        f"{marker['written_at']}, looked for on postgres.standby; rpo_achieved_s (None) <= 0 on dr.failover")
    assert run.record("test_dr_recovery_time_is_within_rto", "failover")["outcome"] == "passed"
    assert [s["outcome"] for s in record["rollback"]] == ["passed"] * 3
    assert_back_on_the_primary(healthy)


# --- MariaDB ---------------------------------------------------------------------------------------------

@pytest.fixture
def mariadb_replica(sandbox, tmp_path):
    """A second MariaDB replicating the sandbox's, read_only as a replica is; its port."""
    import pymysql

    from opsproof.processes import stop_pid
    from opsproof.sandbox import mariadb as sandbox_mariadb

    if "mariadb" not in sandbox.processes:
        pytest.skip("mariadbd is not installed (apt-get install mariadb-server)")
    port = free_port()
    pid = sandbox_mariadb.start(tmp_path, port, server_id=3)
    root = pymysql.connect(unix_socket=str(tmp_path / "mariadb" / "mysqld.sock"), user="root", autocommit=True)
    with root.cursor() as cursor:
        cursor.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={sandbox.port('mariadb')}, "
                       f"MASTER_USER='{sandbox_mariadb.ADMIN_USER}', "
                       f"MASTER_PASSWORD='{sandbox.variables['SANDBOX_MYSQL_ADMIN_PASSWORD']}', "
                       "MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4")
        cursor.execute("START REPLICA")
        cursor.execute("SET GLOBAL read_only = ON")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # caught up: the seeded tables are there
            cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'bankchain'")
            if cursor.fetchone()[0] >= 2:
                break
            time.sleep(0.2)
    yield port
    root.close()
    stop_pid(pid)


def test_promoting_a_mariadb_replica_stops_replication_and_makes_it_writable(sandbox, mariadb_replica, write_env,
                                                                           run_checks, monkeypatch):
    monkeypatch.setenv("DR_MYSQL_ADMIN_PASSWORD", sandbox.variables["SANDBOX_MYSQL_ADMIN_PASSWORD"])
    replica = {"host": "127.0.0.1", "port": mariadb_replica, "user": "opsproof_admin", "database": "bankchain",
               "password": "${DR_MYSQL_ADMIN_PASSWORD}", "connect_timeout_s": 2}
    replication_threads = "SELECT count(*) FROM information_schema.processlist WHERE user = 'system user'"
    invariants = {"writable": {"target": "mysql.replica", "sql": "SELECT @@global.read_only", "max": 0},
                  "replicating": {"target": "mysql.replica", "sql": replication_threads, "max": 0},
                  "transactions": {"target": "mysql.replica", "sql": "SELECT count(*) FROM transactions", "min": 1000}}
    env = {"tier": "sandbox", "mysql": {"replica": replica},
           "dr": {"promote": {"acts_on": ["mysql.replica"], "rto": "1m", "verify": {"invariants": invariants},
                              "steps": [{"name": "promote", "type": "promote", "target": "mysql.replica",
                                         "timeout": "30s"}]}}}
    run = run_checks(write_env(env), "--suite", "dr", "--allow-destructive", "--confirm-drill", "promote")
    assert run.ret == 0, run.output
    record = run.record("test_dr_drill_completes_every_step", "promote")["drill"]
    assert record["steps"][0]["detail"].startswith("mysql.replica promoted: replication reset, read_only off after ")
    assert {v["measure"]: v["value"] for v in record["verifications"] if v["measure"].startswith("invariant.")} == {
        "invariant.writable": 0, "invariant.replicating": 0, "invariant.transactions": 1014}
    again = run_checks(write_env(env), "--suite", "dr", "--allow-destructive", "--confirm-drill", "promote")
    assert again.record("test_dr_drill_completes_every_step", "promote")["message"] == (
        "stopped_at ('promote: mysql.replica is not a replica: SHOW REPLICA STATUS is empty') == None on dr.promote")
