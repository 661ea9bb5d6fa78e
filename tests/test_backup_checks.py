"""Nightly backup checks against the sandbox's real backups: pass when whole, fail on each real fault."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from conftest import sandbox_environment
from opsproof.sandbox import redis as sandbox_redis
from opsproof.sandbox.processes import free_port, stop_pid

HOUR_S = 3600


def backup_set(location: Path | str, format: str, of: str = "postgres.main", **extra) -> dict:
    return {"of": of, "location": str(location), "format": format, "rpo": "24h", "rto": "10m", **extra}


def sandbox_backup(sandbox, pattern: str) -> Path:
    return sorted(Path(sandbox.variables["SANDBOX_BACKUP_DIR"]).glob(pattern))[-1]


def place(source: Path, directory: Path, name: str, age_s: float = 0, data: bytes | None = None) -> Path:
    """Copy a backup (or write ``data``) into ``directory`` with a modification time ``age_s`` ago."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if data is None:
        shutil.copyfile(source, path)
    else:
        path.write_bytes(data)
    moment = time.time() - age_s
    os.utime(path, (moment, moment))
    return path


def checks_of(run, where: str) -> dict[str, dict]:
    return {r["check"]: r for r in run.results["checks"] if r["where"] == where}


@pytest.fixture
def healthy_sets(sandbox, tmp_path):
    """The sandbox's backups, each with an older one of the same size before it, and their manifest."""
    sets = {}
    for name, pattern, format, of in (("db-custom", "*.dump", "pg_custom", "postgres.main"),
                                      ("db-plain", "bankchain-*.sql.gz", "pg_plain_gz", "postgres.main"),
                                      ("cache-rdb", "redis-*.rdb", "redis_rdb", "redis.cache")):
        directory = tmp_path / name
        source = sandbox_backup(sandbox, pattern)
        place(source, directory, "old-" + source.name, age_s=26 * HOUR_S)
        place(source, directory, source.name)
        shutil.copyfile(Path(sandbox.variables["SANDBOX_BACKUP_DIR"]) / "SHA256SUMS", directory / "SHA256SUMS")
        sets[name] = backup_set(directory / f"*{source.suffix}", format, of, manifest="SHA256SUMS")
    return sets


def test_sandbox_takes_real_backups_with_manifest_and_row_counts(sandbox):
    directory = Path(sandbox.variables["SANDBOX_BACKUP_DIR"])
    names = {re.sub(r"-\d{8}T\d{6}Z", "", p.name) for p in directory.iterdir()}
    assert names >= {"bankchain.dump", "bankchain.sql.gz", "redis.rdb", "bankchain.dump.counts.json",
                     "bankchain.sql.gz.counts.json", "SHA256SUMS"}
    manifest = (directory / "SHA256SUMS").read_text()
    assert sandbox_backup(sandbox, "*.dump").name in manifest and sandbox_backup(sandbox, "*.rdb").name in manifest


def test_nightly_backup_checks_pass_on_whole_fresh_backups(sandbox, write_env, run_checks, healthy_sets):
    run = run_checks(write_env(sandbox_environment(sandbox, backups=healthy_sets)), "-m", "nightly")
    assert run.ret == 0, run.output
    expected = {
        "backups.db-custom": {"test_latest_backup_exists", "test_latest_backup_within_rpo",
                              "test_latest_backup_size_within_history", "test_latest_backup_matches_manifest_checksum",
                              "test_latest_custom_dump_reads_through"},
        "backups.db-plain": {"test_latest_backup_exists", "test_latest_backup_within_rpo",
                             "test_latest_backup_size_within_history", "test_latest_backup_matches_manifest_checksum",
                             "test_latest_backup_gzip_stream_complete", "test_latest_dump_has_closing_marker"},
        "backups.cache-rdb": {"test_latest_backup_exists", "test_latest_backup_within_rpo",
                              "test_latest_backup_size_within_history", "test_latest_backup_matches_manifest_checksum",
                              "test_latest_rdb_passes_redis_check_rdb", "test_redis_last_save_within_rpo"},
    }
    for where, names in expected.items():
        passed = {check for check, r in checks_of(run, where).items() if r["outcome"] == "passed"}
        assert passed == names, where
    age = checks_of(run, "backups.db-custom")["test_latest_backup_within_rpo"]["measurements"]
    assert [m["measure"] for m in age] == ["backup_id", "rpo_h", "age_h"] and age[1]["value"] == 24.0
    assert age[2]["value"] < 1 and age[2]["verdict"] == "ok"


@pytest.fixture
def broken_sets(sandbox, tmp_path):
    """One backup set per must-show fault, each made from the sandbox's real backups."""
    custom, plain = sandbox_backup(sandbox, "*.dump"), sandbox_backup(sandbox, "bankchain-*.sql.gz")
    rdb = sandbox_backup(sandbox, "redis-*.rdb")
    gz_bytes, dump_text = plain.read_bytes(), gzip.decompress(plain.read_bytes())
    custom_bytes = bytearray(custom.read_bytes())
    custom_bytes[len(custom_bytes) // 2:len(custom_bytes) // 2 + 24] = b"X" * 24
    place(custom, tmp_path / "stale", custom.name, age_s=30 * HOUR_S)
    place(plain, tmp_path / "truncated-gz", plain.name, data=gz_bytes[: len(gz_bytes) // 2])
    place(plain, tmp_path / "unterminated", plain.name, data=gzip.compress(dump_text[: len(dump_text) * 7 // 10]))
    place(custom, tmp_path / "corrupt-custom", custom.name, data=bytes(custom_bytes))
    place(custom, tmp_path / "checksum", custom.name)
    (tmp_path / "checksum" / "SHA256SUMS").write_text(f"{'0' * 64}  {custom.name}\n")
    for n in range(3):
        place(custom, tmp_path / "size-drop", f"old-{n}.dump", age_s=(n + 1) * HOUR_S)
    place(custom, tmp_path / "size-drop", custom.name, data=custom.read_bytes()[:200])
    place(rdb, tmp_path / "truncated-rdb", rdb.name, data=rdb.read_bytes()[:5000])
    (tmp_path / "missing").mkdir()
    return {
        "missing": backup_set(tmp_path / "missing" / "*.dump", "pg_custom"),
        "stale": backup_set(tmp_path / "stale" / "*.dump", "pg_custom"),
        "truncated-gz": backup_set(tmp_path / "truncated-gz" / "*.sql.gz", "pg_plain_gz"),
        "unterminated": backup_set(tmp_path / "unterminated" / "*.sql.gz", "pg_plain_gz"),
        "corrupt-custom": backup_set(tmp_path / "corrupt-custom" / "*.dump", "pg_custom"),
        "checksum": backup_set(tmp_path / "checksum" / "*.dump", "pg_custom", manifest="SHA256SUMS"),
        "size-drop": backup_set(tmp_path / "size-drop" / "*.dump", "pg_custom", size_drop_max_fraction=0.5),
        "truncated-rdb": backup_set(tmp_path / "truncated-rdb" / "*.rdb", "redis_rdb", of="redis.cache"),
    }


def test_each_backup_fault_fails_with_its_evidence(sandbox, write_env, run_checks, broken_sets):
    custom = sandbox_backup(sandbox, "*.dump")
    run = run_checks(write_env(sandbox_environment(sandbox, backups=broken_sets)), "-m", "nightly")
    assert run.ret == 1

    def failed(where: str, check: str) -> str:
        record = checks_of(run, f"backups.{where}")[check]
        assert record["outcome"] == "failed", (where, check, record)
        return record["message"]

    assert failed("missing", "test_latest_backup_exists") == "latest_backup ('none') != 'none' on backups.missing"
    assert checks_of(run, "backups.missing")["test_latest_backup_within_rpo"]["message"] == (
        f"could not measure on backups.missing: no backup matches {broken_sets['missing']['location']}")
    assert failed("stale", "test_latest_backup_within_rpo") == "age_h (30.0) <= 24 on backups.stale"
    assert failed("truncated-gz", "test_latest_backup_gzip_stream_complete") == (
        "gzip_stream ('truncated') == 'complete' on backups.truncated-gz")
    unterminated = checks_of(run, "backups.unterminated")
    assert unterminated["test_latest_backup_gzip_stream_complete"]["outcome"] == "passed"  # gzip -t alone misses it
    assert failed("unterminated", "test_latest_dump_has_closing_marker") == (
        "closing_marker ('missing') == 'present' on backups.unterminated")
    assert failed("corrupt-custom", "test_latest_custom_dump_reads_through") == (
        "pg_restore_read ('pg_restore: error: could not uncompress data: incorrect data check') == 'readable' "
        "on backups.corrupt-custom")
    actual = hashlib.sha256(custom.read_bytes()).hexdigest()
    assert failed("checksum", "test_latest_backup_matches_manifest_checksum") == (
        f"sha256 ('{actual}') == '{'0' * 64}' on backups.checksum")
    floor = int(custom.stat().st_size * 0.5)
    assert failed("size-drop", "test_latest_backup_size_within_history") == (
        f"size_bytes (200) >= {floor} on backups.size-drop")
    assert failed("truncated-rdb", "test_latest_rdb_passes_redis_check_rdb") == (
        "redis_check_rdb ('Unexpected EOF reading RDB file') == 'ok' on backups.truncated-rdb")


def test_truncated_custom_dump_still_lists_but_fails_the_full_read(sandbox, tmp_path, write_env, run_checks):
    custom = sandbox_backup(sandbox, "*.dump")
    cut_bytes = custom.read_bytes()[: custom.stat().st_size * 6 // 10]
    truncated = place(custom, tmp_path / "cut", custom.name, data=cut_bytes)
    assert subprocess.run(["pg_restore", "--list", str(truncated)], capture_output=True).returncode == 0
    sets = {"cut": backup_set(tmp_path / "cut" / "*.dump", "pg_custom")}
    run = run_checks(write_env(sandbox_environment(sandbox, backups=sets)), "-k", "custom_dump")
    assert run.record("test_latest_custom_dump_reads_through", "cut")["message"] == (
        "pg_restore_read ('pg_restore: error: could not read from input file: end of file') == 'readable' "
        "on backups.cut")


@pytest.fixture
def redis_with_failed_bgsave(sandbox, tmp_path):
    """A real Redis whose last BGSAVE failed: its data directory vanished (a lost mount) before the save."""
    port = free_port()
    pid = sandbox_redis.start(tmp_path / "r", port, sandbox.redis_password)
    client = redis.Redis(host="127.0.0.1", port=port, password=sandbox.redis_password, socket_timeout=5)
    shutil.rmtree(tmp_path / "r")
    client.bgsave()
    deadline = time.monotonic() + 10
    while client.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.info("persistence")["rdb_last_bgsave_status"] == "err"
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    stop_pid(pid)


def test_failed_bgsave_fails_the_redis_persistence_check(sandbox, tmp_path, write_env, run_checks,
                                                        redis_with_failed_bgsave):
    rdb = sandbox_backup(sandbox, "redis-*.rdb")
    place(rdb, tmp_path / "rdb", rdb.name)
    environment = sandbox_environment(sandbox, backups={"cache": backup_set(tmp_path / "rdb" / "*.rdb", "redis_rdb",
                                                                            of="redis.cache")})
    environment["redis"]["cache"]["url"] = redis_with_failed_bgsave
    run = run_checks(write_env(environment), "-k", "redis_last")
    assert run.record("test_redis_last_save_succeeded", "cache")["message"] == (  # the redis area's check
        "rdb_last_bgsave_status ('err') == 'ok' on redis.cache")
    assert run.record("test_redis_last_save_within_rpo", "cache")["outcome"] == "passed"  # LASTSAVE is recent
