"""Replication checks against a real streaming replica of the sandbox, made with pg_basebackup."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from conftest import sandbox_environment
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.processes import free_port, unprivileged_user

LAG = {"replication_lag_bytes": {"warn": 100_000, "crit": 16_000_000}, "replication_lag_s": {"crit": 60}}


class Standby:
    def __init__(self, data_dir: Path, port: int, admin_password: str):
        self.data_dir, self.port, self.admin_password = data_dir, port, admin_password

    def admin(self):
        return psycopg.connect(sandbox_pg.dsn(self.port, user=sandbox_pg.ADMIN_USER), password=self.admin_password,
                               autocommit=True, connect_timeout=5)


def _streaming(sandbox, name: str) -> bool:
    with psycopg.connect(sandbox_pg.dsn(sandbox.pg_port, user=sandbox_pg.ADMIN_USER),
                         password=sandbox.pg_admin_password, connect_timeout=5) as conn:
        row = conn.execute("SELECT state FROM pg_stat_replication WHERE application_name = %s", (name,)).fetchone()
    return bool(row and row[0] == "streaming")


@pytest.fixture(scope="module")
def standby(sandbox):
    """standby1: pg_basebackup of the sandbox primary, streaming from it, run as the server user."""
    parent = Path(tempfile.mkdtemp(prefix="opsproof-standby-"))
    user = unprivileged_user()
    if user:
        os.chmod(parent, 0o755)
        os.chown(parent, user.pw_uid, user.pw_gid)
    data_dir, port = parent / "data", free_port()
    conninfo = (f"host=127.0.0.1 port={sandbox.pg_port} user={sandbox_pg.ADMIN_USER} "
                f"password={sandbox.pg_admin_password} application_name=standby1")
    result = sandbox_pg._as_server_user([str(sandbox_pg.bindir() / "pg_basebackup"), "-d", conninfo,
                                         "-D", str(data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"])
    assert result.returncode == 0, result.stderr
    with open(data_dir / "postgresql.auto.conf", "a") as conf:  # the last setting wins
        conf.write(f"primary_conninfo = '{conninfo}'\n")
    sandbox_pg.start(data_dir, port)
    deadline = time.monotonic() + 20
    while not _streaming(sandbox, "standby1") and time.monotonic() < deadline:
        time.sleep(0.2)
    yield Standby(data_dir, port, sandbox.pg_admin_password)
    sandbox_pg.stop(data_dir)
    sandbox_pg.remove(data_dir, parent.parent)


def replication_environment(sandbox, standby) -> dict:
    environment = sandbox_environment(sandbox)
    environment["postgres"]["main"].update(expect_role="primary", replicas=["standby1"], **LAG)
    environment["postgres"]["standby"] = {
        **environment["postgres"]["main"], "dsn": sandbox_pg.dsn(standby.port), "expect_role": "replica",
        "replicas": []}
    return environment


def test_read_only_sessions_measure_a_hot_standby(sandbox, standby, write_env, run_checks):
    """Tier staging: every statement in BEGIN READ ONLY, ROLLBACK, DISCARD ALL, which a standby accepts."""
    environment = replication_environment(sandbox, standby)
    for target in environment["postgres"].values():
        target["invariants"] = {"users": {"sql": "SELECT count(*) FROM users", "min": 1}}
    run = run_checks(write_env({**environment, "tier": "staging"}),
                     "-k", "postgres and (role or replica or replication or invariant)")
    assert run.ret == 0, run.output
    outcomes = {r["id"].split("::")[1]: r["outcome"] for r in run.results["checks"] if "standby" in r["id"]}
    assert outcomes == {
        "test_postgres_role_is_expected[standby]": "passed",
        "test_postgres_monitoring_role_is_least_privileged[standby]": "passed",
        "test_postgres_expected_replicas_are_streaming[standby]": "skipped",
        "test_postgres_replication_lag_within_threshold[standby]": "passed",
        "test_postgres_invariant_holds[standby-users]": "passed"}


def test_streaming_replica_passes_warns_when_replay_pauses_fails_when_stopped(
        sandbox, standby, write_env, run_checks):
    path = write_env(replication_environment(sandbox, standby))
    selection = ("-k", "postgres and (role or replica or replication)")
    healthy = run_checks(path, *selection)
    assert healthy.ret == 0, healthy.output
    outcomes = {r["id"].split("::")[1]: r["outcome"] for r in healthy.results["checks"]}
    assert outcomes == {
        "test_postgres_role_is_expected[main]": "passed", "test_postgres_role_is_expected[standby]": "passed",
        "test_postgres_monitoring_role_is_least_privileged[main]": "skipped",  # tier sandbox: read-write
        "test_postgres_monitoring_role_is_least_privileged[standby]": "skipped",
        "test_postgres_expected_replicas_are_streaming[main]": "passed",
        "test_postgres_expected_replicas_are_streaming[standby]": "skipped",
        "test_postgres_replication_lag_within_threshold[main]": "passed",
        "test_postgres_replication_lag_within_threshold[standby]": "passed"}
    assert healthy.record("test_postgres_expected_replicas_are_streaming", "main")["measurements"][0]["value"][
        "standby1"]["state"] == "streaming"

    # replay paused on the replica while the primary writes: WAL arrives but is not applied
    with standby.admin() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        with psycopg.connect(sandbox.pg_dsn, password=sandbox.pg_password, autocommit=True) as conn:
            conn.execute("UPDATE wallets SET balance = balance WHERE id <= 1000")  # ~250 kB of WAL, same values
        time.sleep(0.5)
        lagging = run_checks(path, *selection)
    finally:
        with standby.admin() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    record = lagging.record("test_postgres_replication_lag_within_threshold", "standby")
    lag_bytes = record["measurements"][0]["value"]["lag_bytes"]
    assert lagging.ret == 0 and record["outcome"] == "warned" and lag_bytes > 100_000
    assert record["message"] == f"replication_lag_bytes ({lag_bytes}) <= 100000 on postgres.standby (warn)"

    sandbox_pg.stop(standby.data_dir)
    stopped = run_checks(path, *selection)
    assert stopped.ret == 1
    assert stopped.record("test_postgres_expected_replicas_are_streaming", "main")["message"] == (
        "replicas_not_streaming (['standby1']) == [] on postgres.main")
    assert stopped.record("test_postgres_role_is_expected", "standby")["outcome"] == "error"
