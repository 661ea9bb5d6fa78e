"""Barman checks against a real Barman server: a dedicated cluster streamed by receive-wal, one backup."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import sandbox_environment
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.processes import free_port

ADMIN_PASSWORD = "barman-admin-password"


class BarmanServer:
    """Barman (``backup_method = postgres``, streaming archiver) over a test-owned cluster, as root."""

    def __init__(self, root: Path, port: int):
        self.root, self.port, self.config = root, port, root / "barman.conf"
        self.receiver: subprocess.Popen | None = None

    def barman(self, *command: str, config: Path | None = None) -> str:
        result = subprocess.run(["barman", "-c", str(config or self.config), *command], capture_output=True,
                                text=True, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start_receiving(self) -> None:
        """``barman receive-wal`` in the background, returned once pg_receivewal is streaming."""
        started = self.log().count("pg_receivewal: starting log streaming")
        self.receiver = subprocess.Popen(["barman", "-c", str(self.config), "receive-wal", "pg"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while self.log().count("pg_receivewal: starting log streaming") == started and time.monotonic() < deadline:
            time.sleep(0.1)

    def log(self) -> str:
        log = self.root / "barman.log"
        return log.read_text() if log.exists() else ""

    def stop_receiving(self) -> None:
        if self.receiver is not None and self.receiver.poll() is None:
            os.killpg(self.receiver.pid, signal.SIGTERM)  # barman and its pg_receivewal child
            self.receiver.wait(timeout=20)
        self.receiver = None


@pytest.fixture(scope="module")
def barman_server():
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="opsproof-barman-"))
    os.chmod(root, 0o755)
    data_dir = sandbox_pg.create_cluster(root, port, ADMIN_PASSWORD)
    server = BarmanServer(root, port)
    try:
        sandbox_pg.start(data_dir, port)
        passfile = root / "pgpass"
        passfile.write_text(f"127.0.0.1:{port}:*:{sandbox_pg.ADMIN_USER}:{ADMIN_PASSWORD}\n")
        passfile.chmod(0o600)
        (root / "home").mkdir()
        conninfo = f"host=127.0.0.1 port={port} user={sandbox_pg.ADMIN_USER} passfile={passfile}"
        server.config.write_text(
            f"[barman]\nbarman_home = {root}/home\nbarman_user = root\nlog_file = {root}/barman.log\n\n"
            f"[pg]\ndescription = opsproof test\nconninfo = {conninfo} dbname=postgres\n"
            f"streaming_conninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = on\n"
            f"slot_name = barman\n")
        server.barman("receive-wal", "--create-slot", "pg")
        server.start_receiving()
        server.barman("switch-wal", "--force", "--archive", "--archive-timeout", "30", "pg")
        server.barman("backup", "--wait", "--wait-timeout", "60", "pg")
        yield server
    finally:
        server.stop_receiving()
        sandbox_pg.stop(data_dir)
        sandbox_pg.remove(data_dir, root)
        shutil.rmtree(root, ignore_errors=True)


def environment(sandbox, server: BarmanServer, name: str = "pg", rpo: str = "24h") -> dict:
    base = sandbox_environment(sandbox)
    base["postgres"]["streamed"] = {"dsn": f"postgresql://{sandbox_pg.ADMIN_USER}@127.0.0.1:{server.port}/postgres",
                                    "password": ADMIN_PASSWORD}
    base["backups"] = {"barman": {"of": "postgres.streamed", "format": "barman", "rpo": rpo, "rto": "1h",
                                  "barman": {"server": name, "config": str(server.config)}}}
    return base


CHECKS = ("test_barman_latest_backup_done", "test_barman_latest_backup_within_rpo", "test_barman_check_passes")


def test_barman_checks_pass_on_a_real_server(sandbox, barman_server, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, barman_server)), "-k", "barman")
    assert run.ret == 0, run.output
    for check in CHECKS:
        assert run.record(check, "barman")["outcome"] == "passed", check
    measurements = run.record("test_barman_latest_backup_done", "barman")["measurements"]
    assert measurements[-1] == {"measure": "backup_status", "value": "DONE", "op": "==", "limit": "DONE",
                                "verdict": "ok"}
    assert run.record("test_barman_check_passes", "barman")["measurements"][0]["value"] == "ok"


def test_stopped_wal_receiver_fails_barman_check(sandbox, barman_server, write_env, run_checks):
    barman_server.stop_receiving()
    try:
        run = run_checks(write_env(environment(sandbox, barman_server)), "-k", "barman_check")
        assert run.ret == 1
        assert run.record("test_barman_check_passes", "barman")["message"] == (
            "barman_check ('receive wal running: FAILED (See the Barman log file for more details)') == 'ok' "
            "on backups.barman")
    finally:
        barman_server.start_receiving()


def test_failed_latest_backup_fails_with_its_status(sandbox, barman_server, write_env, run_checks):
    """A pg_basebackup that dies mid-copy (a disk full, here a stand-in binary) leaves a FAILED backup."""
    broken = barman_server.root / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "pg_basebackup").write_text(
        "#!/bin/sh\ncase \"$*\" in *--version*) exec %s \"$@\";; esac\n"
        "echo 'pg_basebackup: error: could not write to file: No space left on device' >&2\nexit 1\n"
        % (sandbox_pg.bindir() / "pg_basebackup"))
    (broken / "pg_basebackup").chmod(0o755)
    config = barman_server.root / "broken.conf"
    config.write_text(barman_server.config.read_text().replace("[pg]\n", f"[pg]\npath_prefix = {broken}\n"))
    failed = subprocess.run(["barman", "-c", str(config), "backup", "pg"], capture_output=True, text=True, timeout=90)
    assert failed.returncode != 0 and "Backup failed copying files" in failed.stdout + failed.stderr
    backup_id = next(line.rsplit(" ", 1)[-1] for line in failed.stdout.splitlines() if "copy via" in line)
    try:
        run = run_checks(write_env(environment(sandbox, barman_server)), "-k", "barman")
        assert run.ret == 1
        assert run.record("test_barman_latest_backup_done", "barman")["message"] == (
            "backup_status ('FAILED') == 'DONE' on backups.barman")
        assert run.record("test_barman_latest_backup_within_rpo", "barman")["outcome"] == "passed"
        assert run.record("test_barman_check_passes", "barman")["message"] == (
            "barman_check ('failed backups: FAILED (there are 1 failed backups)') == 'ok' on backups.barman")
    finally:
        barman_server.barman("delete", "pg", backup_id)


def test_unknown_server_errors_with_barmans_message(sandbox, barman_server, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, barman_server, name="nosuch")), "-k", "barman_latest_backup_done")
    record = run.record("test_barman_latest_backup_done", "barman")
    assert run.ret == 1 and record["outcome"] == "error", record
    assert "barman list-backups: Unknown server 'nosuch'" in record["message"], record["message"]


def test_stale_latest_backup_fails_with_its_age(sandbox, barman_server, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, barman_server, rpo="1s")), "-k", "barman_latest_backup_within_rpo")
    assert run.ret == 1
    message = run.record("test_barman_latest_backup_within_rpo", "barman")["message"]
    assert re.fullmatch(r"age_s \(\d+(\.\d+)?\) <= 1 on backups\.barman", message), message


def test_backup_waiting_for_wals_is_not_done(sandbox, barman_server, write_env, run_checks):
    """A backup whose closing WAL has not reached the archive yet (``barman backup`` without ``--wait``,
    before its closing WAL is archived) is WAITING_FOR_WALS: not restorable yet, and said so.

    The WAL receiver is paused during the backup: otherwise the closing segment can stream in before
    ``barman backup`` processes the WAL it has, and the backup is DONE before the checks look.
    """
    os.killpg(barman_server.receiver.pid, signal.SIGSTOP)  # barman receive-wal and its pg_receivewal
    try:
        finished = subprocess.run(["barman", "-c", str(barman_server.config), "backup", "pg"],
                                  capture_output=True, text=True, timeout=90)
    finally:
        os.killpg(barman_server.receiver.pid, signal.SIGCONT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    backup_id = next(line.rsplit(" ", 1)[-1] for line in finished.stdout.splitlines() if "copy via" in line)
    try:
        run = run_checks(write_env(environment(sandbox, barman_server)), "-k", "barman_latest")
        assert run.ret == 1, run.output
        assert run.record("test_barman_latest_backup_done", "barman")["message"] == (
            "backup_status ('WAITING_FOR_WALS') == 'DONE' on backups.barman")
        within = run.record("test_barman_latest_backup_within_rpo", "barman")
        assert within["outcome"] == "passed"  # judged on the previous DONE backup, which is recorded
        done = within["measurements"][0]
        assert (done["measure"], done["verdict"]) == ("latest_done_backup", "ok")
        assert done["value"] not in (backup_id, "none")
    finally:
        barman_server.barman("delete", "pg", backup_id)
