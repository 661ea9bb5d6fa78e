"""pgBackRest checks against a real stanza: a dedicated cluster archiving WAL, one full backup."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from conftest import sandbox_environment
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.processes import free_port, unprivileged_user

ADMIN_PASSWORD = "pgbackrest-admin-password"


class Archived:
    """A cluster with archive_mode on, archiving into a pgBackRest repository with one full backup."""

    def __init__(self, root: Path, data_dir: Path, port: int, config: Path):
        self.root, self.data_dir, self.port, self.config = root, data_dir, port, config

    def sql(self, statement: str):
        with psycopg.connect(host="127.0.0.1", port=self.port, user="opsproof_admin", dbname="postgres",
                             password=ADMIN_PASSWORD, autocommit=True) as conn:
            return conn.execute(statement).fetchall() if statement.lstrip().upper().startswith("SELECT") else (
                conn.execute(statement))

    def pgbackrest(self, *command: str) -> None:
        result = sandbox_pg._as_server_user(["pgbackrest", f"--config={self.config}", "--stanza=demo", *command])
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def archived():
    port, user = free_port(), unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="opsproof-pgbackrest-"))
    os.chmod(root, 0o755)
    data_dir = sandbox_pg.create_cluster(root, port, ADMIN_PASSWORD)
    for name in ("repo", "log", "lock", "socket"):
        (root / name).mkdir()
        if user:
            os.chown(root / name, user.pw_uid, user.pw_gid)
    config = root / "pgbackrest.conf"
    config.write_text(
        f"[global]\nrepo1-path={root}/repo\nlog-path={root}/log\nlock-path={root}/lock\nlog-level-file=off\n"
        f"start-fast=y\ncompress-type=none\n\n[demo]\npg1-path={data_dir}\npg1-port={port}\n"
        f"pg1-socket-path={root}/socket\npg1-user=opsproof_admin\n"
    )
    hba = data_dir / "pg_hba.conf"
    hba.write_text("local all all trust\n" + hba.read_text())  # pgBackRest talks over the socket
    with open(data_dir / "postgresql.auto.conf", "a") as auto:
        auto.write(f"archive_mode = on\narchive_command = 'pgbackrest --config={config} --stanza=demo "
                   f"archive-push %p'\n")
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}/socket "
               f"-c fsync=off -c wal_level=replica")
    started = sandbox_pg._as_server_user([str(sandbox_pg.bindir() / "pg_ctl"), "-D", str(data_dir), "-l",
                                          str(data_dir / "server.log"), "-w", "-t", "60", "-o", options, "start"])
    assert started.returncode == 0, started.stderr
    cluster = Archived(root, data_dir, port, config)
    try:
        cluster.pgbackrest("stanza-create")
        cluster.pgbackrest("backup", "--type=full")
        yield cluster
    finally:
        sandbox_pg.stop(data_dir)
        sandbox_pg.remove(data_dir, root)
        shutil.rmtree(root, ignore_errors=True)


def environment(sandbox, archived, stanza: str = "demo", verify: bool = True) -> dict:
    base = sandbox_environment(sandbox)
    base["postgres"]["archived"] = {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{archived.port}/postgres",
                                    "password": ADMIN_PASSWORD}
    base["backups"] = {"repo": {"of": "postgres.archived", "format": "pgbackrest", "rpo": "24h", "rto": "1h",
                                "pgbackrest": {"stanza": stanza, "config": str(archived.config), "verify": verify}}}
    return base


def test_pgbackrest_checks_pass_on_a_real_stanza(sandbox, archived, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, archived)), "-k", "pgbackrest or wal_archiving")
    assert run.ret == 0, run.output
    for check in ("test_pgbackrest_latest_backup_ok", "test_pgbackrest_latest_backup_within_rpo",
                  "test_pgbackrest_verify_passes", "test_wal_archiving_keeps_up"):
        assert run.record(check, "repo")["outcome"] == "passed", check
    measurements = run.record("test_pgbackrest_latest_backup_ok", "repo")["measurements"]
    assert measurements[0] == {"measure": "stanza_status", "value": "ok", "op": "==", "limit": "ok", "verdict": "ok"}
    assert measurements[1]["measure"] == "backup_id" and measurements[1]["value"].endswith("F")


def test_missing_stanza_fails_with_pgbackrest_status(sandbox, archived, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, archived, stanza="nosuch", verify=False)), "-k", "pgbackrest")
    assert run.ret == 1
    assert run.record("test_pgbackrest_latest_backup_ok", "repo")["message"] == (
        "stanza_status ('missing stanza path') == 'ok' on backups.repo")
    assert run.record("test_pgbackrest_latest_backup_within_rpo", "repo")["message"] == (
        "latest_backup ('none') != 'none' on backups.repo")


def test_failing_wal_archiving_fails(sandbox, archived, write_env, run_checks):
    archived.sql("ALTER SYSTEM SET archive_command = 'false'")
    archived.sql("SELECT pg_reload_conf()")
    try:
        archived.sql("CREATE TABLE IF NOT EXISTS wal_filler AS SELECT 1 AS n")
        archived.sql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 20
        while not archived.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] and time.monotonic() < deadline:
            time.sleep(0.2)
        run = run_checks(write_env(environment(sandbox, archived, verify=False)), "-k", "wal_archiving")
        assert run.record("test_wal_archiving_keeps_up", "repo")["message"] == (
            "archiver_failing (true) == false on backups.repo")
    finally:
        archived.sql("ALTER SYSTEM RESET archive_command")
        archived.sql("SELECT pg_reload_conf()")


def test_corrupted_repository_file_fails_pgbackrest_verify(sandbox, archived, write_env, run_checks):
    files = sorted((archived.root / "repo" / "backup" / "demo").glob("*F/pg_data/base/1/*"),
                   key=lambda p: p.stat().st_size)
    with open(files[-1], "r+b") as handle:  # the largest relation file of the template database
        handle.seek(100)
        handle.write(b"corrupted by the test")
    run = run_checks(write_env(environment(sandbox, archived)), "-k", "verify")
    record = run.record("test_pgbackrest_verify_passes", "repo")
    assert run.ret == 1 and record["outcome"] == "failed"
    assert re.fullmatch(r"pgbackrest_verify \(\"invalid checksum '\d{8}-\d{6}F/pg_data/base/1/\d+'\"\) == 'ok' "
                        r"on backups\.repo", record["message"]), record["message"]
