"""pg_basebackup sets: a real base backup of the sandbox cluster, verified by pg_verifybackup."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import sandbox_environment


@pytest.fixture(scope="module")
def base_backup(sandbox, tmp_path_factory):
    """One plain-format base backup with its WAL (-X stream) and SHA256 manifest; tests copy it."""
    directory = tmp_path_factory.mktemp("basebackups") / "base_20261123"
    taken = subprocess.run(
        ["pg_basebackup", "-h", "127.0.0.1", "-p", str(sandbox.port("postgres")), "-U", "opsproof_admin",
         "-D", str(directory), "-X", "stream", "-c", "fast", "--manifest-checksums=SHA256"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PGPASSWORD=sandbox.pg_admin_password))
    assert taken.returncode == 0, taken.stderr
    return directory


@pytest.fixture
def backups_dir(base_backup, tmp_path) -> Path:
    """A private copy of the base backup to damage."""
    directory = tmp_path / "base"
    directory.mkdir()
    shutil.copytree(base_backup, directory / base_backup.name, symlinks=True)
    return directory


def environment(sandbox, directory: Path, rpo: str = "24h") -> dict:
    base = sandbox_environment(sandbox)
    base["backups"] = {"base": {"of": "postgres.main", "format": "pg_basebackup", "location": f"{directory}/base_*",
                                "rpo": rpo, "rto": "1h"}}
    return base


def largest_relation(directory: Path) -> Path:
    return sorted((directory / "base_20261123" / "base" / "1").iterdir(), key=lambda p: p.stat().st_size)[-1]


def test_base_backup_checks_pass_on_a_real_base_backup(sandbox, backups_dir, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, backups_dir)), "-k", "backup")
    assert run.ret == 0, run.output
    for check in ("test_latest_backup_exists", "test_latest_backup_within_rpo",
                  "test_latest_base_backup_passes_pg_verifybackup"):
        assert run.record(check, "base")["outcome"] == "passed", check
    measurements = run.record("test_latest_base_backup_passes_pg_verifybackup", "base")["measurements"]
    assert measurements == [
        {"measure": "backup_id", "value": "base_20261123"},
        {"measure": "pg_verifybackup", "value": "ok", "op": "==", "limit": "ok", "verdict": "ok"}]


def test_modified_file_fails_pg_verifybackup(sandbox, backups_dir, write_env, run_checks):
    relation = largest_relation(backups_dir)
    with open(relation, "r+b") as handle:
        handle.seek(100)
        handle.write(b"corrupted by the test")
    run = run_checks(write_env(environment(sandbox, backups_dir)), "-k", "pg_verifybackup")
    assert run.ret == 1
    assert run.record("test_latest_base_backup_passes_pg_verifybackup", "base")["message"] == (
        f"pg_verifybackup ('checksum mismatch for file \"base/1/{relation.name}\"') == 'ok' on backups.base")


def test_deleted_file_fails_pg_verifybackup(sandbox, backups_dir, write_env, run_checks):
    relation = largest_relation(backups_dir)
    relation.unlink()
    run = run_checks(write_env(environment(sandbox, backups_dir)), "-k", "pg_verifybackup")
    assert run.ret == 1
    assert run.record("test_latest_base_backup_passes_pg_verifybackup", "base")["message"] == (
        f"pg_verifybackup ('\"base/1/{relation.name}\" is present in the manifest but not on disk') == 'ok' "
        "on backups.base")


def test_missing_manifest_fails_pg_verifybackup(sandbox, backups_dir, write_env, run_checks):
    (backups_dir / "base_20261123" / "backup_manifest").unlink()
    run = run_checks(write_env(environment(sandbox, backups_dir)), "-k", "pg_verifybackup")
    message = run.record("test_latest_base_backup_passes_pg_verifybackup", "base")["message"]
    assert run.ret == 1
    assert re.fullmatch(r"pg_verifybackup \('could not open file \"\S+/base_20261123/backup_manifest\": No such "
                        r"file or directory'\) == 'ok' on backups\.base", message), message


def test_stale_or_absent_base_backup_fails_age_and_exists(sandbox, backups_dir, tmp_path, write_env, run_checks):
    old = backups_dir / "base_20261123"
    stamp = old.stat().st_mtime - 3 * 86400
    os.utime(old / "backup_manifest", (stamp, stamp))
    run = run_checks(write_env(environment(sandbox, backups_dir, rpo="24h")), "-k", "within_rpo")
    assert run.ret == 1
    assert re.fullmatch(r"age_h \(72\.0\d?\) <= 24 on backups\.base",
                        run.record("test_latest_backup_within_rpo", "base")["message"])
    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_checks(write_env(environment(sandbox, empty)), "-k", "exists")
    assert run.record("test_latest_backup_exists", "base")["message"] == (
        "latest_backup ('none') != 'none' on backups.base")
