"""Backups on another machine (``on: host.X``): the local path's faults and the restore drill, over a real sshd.

The sshd runs on this machine, so a set's files are placed as for the local tests and read back over ssh:
the evidence must be the same line the local check gives.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from datetime import datetime, timezone

import pytest

from conftest import sandbox_environment
from opsproof.backups.location import BackupFile
from opsproof.backups.remote import SshLocation
from opsproof.environment.host import HostTarget
from opsproof.errors import ProbeError
from ssh_server import sshd  # noqa: F401 - the module-scoped sshd fixture
from test_backup_checks import broken_sets, checks_of, healthy_sets, sandbox_backup  # noqa: F401 - fixtures
from test_restore_drill import copy_backup, databases, drill_set, scratch

NIGHTLY_PASSED = {"test_latest_backup_exists", "test_latest_backup_within_rpo",
                  "test_latest_backup_size_within_history", "test_latest_backup_matches_manifest_checksum"}


def on_host(sets: dict, host: str = "db1") -> dict:
    return {name: {**spec, "on": f"host.{host}"} for name, spec in sets.items()}


def remote_environment(sandbox, sshd, sets: dict, **host) -> dict:  # noqa: F811 - sshd is the fixture's value
    return sandbox_environment(sandbox, backups=on_host(sets), host={"db1": {**sshd, "timeout_s": 5, **host}})


def test_whole_backups_on_a_host_pass_over_ssh(sandbox, sshd, write_env, run_checks, healthy_sets):  # noqa: F811
    run = run_checks(write_env(remote_environment(sandbox, sshd, healthy_sets)), "-m", "nightly", "-k", "backup")
    assert run.ret == 0, run.output
    own = {"db-custom": "test_latest_custom_dump_reads_through", "cache-rdb": "test_latest_rdb_passes_redis_check_rdb"}
    for name in healthy_sets:
        passed = {check for check, r in checks_of(run, f"backups.{name}").items() if r["outcome"] == "passed"}
        assert passed >= NIGHTLY_PASSED | ({own[name]} if name in own else set()), (name, passed)
    plain = checks_of(run, "backups.db-plain")
    assert {plain[c]["outcome"] for c in ("test_latest_backup_gzip_stream_complete",
                                          "test_latest_dump_has_closing_marker")} == {"passed"}


def test_each_backup_fault_on_a_host_fails_with_the_local_evidence(sandbox, sshd, write_env, run_checks,  # noqa: F811
                                                                    broken_sets):
    custom = sandbox_backup(sandbox, "*.dump")
    run = run_checks(write_env(remote_environment(sandbox, sshd, broken_sets)), "-m", "nightly", "-k", "backup")
    assert run.ret == 1

    def failed(where: str, check: str) -> str:
        record = checks_of(run, f"backups.{where}")[check]
        assert record["outcome"] == "failed", (where, check, record)
        return record["message"]

    assert failed("missing", "test_latest_backup_exists") == "latest_backup ('none') != 'none' on backups.missing"
    assert checks_of(run, "backups.missing")["test_latest_backup_within_rpo"]["message"] == (
        f"could not measure on backups.missing: no backup matches host.db1:{broken_sets['missing']['location']}")
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
    assert failed("size-drop", "test_latest_backup_size_within_history") == (
        f"size_bytes (200) >= {int(custom.stat().st_size * 0.5)} on backups.size-drop")
    assert failed("truncated-rdb", "test_latest_rdb_passes_redis_check_rdb") == (
        "redis_check_rdb ('Unexpected EOF reading RDB file') == 'ok' on backups.truncated-rdb")


def test_restore_drill_fetches_its_dump_over_ssh(sandbox, sshd, tmp_path, write_env, run_checks,  # noqa: F811
                                                 monkeypatch):
    monkeypatch.setenv("TEST_PG_ADMIN_PASSWORD", sandbox.pg_admin_password)
    drill_tmp = tmp_path / "tmp"
    drill_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(drill_tmp))  # the drill's fetch directory lands here
    source = copy_backup(sandbox, "*.dump", tmp_path / "db", counts={"users": 500})
    sets = {"remote-db": drill_set(tmp_path / "db", "*.dump", "pg_custom", scratch(sandbox, "drill_remote"))}
    run = run_checks(write_env(remote_environment(sandbox, sshd, sets)), "--suite", "backup", "--allow-destructive",
                     "-k", "restores")
    assert run.ret == 0, run.output
    record = run.record("test_latest_backup_restores_and_verifies_within_rto", "remote-db")["drill"]
    assert record["outcome"] == "passed" and record["cleanup_confirmed"] is True
    assert record["backup_id"] == source.name and record["steps"][0]["detail"] == source.name
    assert {"measure": "rows.users", "value": 500, "op": ">=", "limit": 500, "verdict": "ok"} in (
        record["verifications"])  # the limit is the count recorded in the sidecar, read over ssh
    assert "drill_remote" not in databases(sandbox)
    assert not list(drill_tmp.glob("opsproof-drill-*"))  # the fetched dump went with the drill's own directory


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unanswering_host_errors_the_first_check_within_its_timeout_and_skips_the_rest(
        sandbox, sshd, tmp_path, write_env, run_checks, request, kind):  # noqa: F811
    port = request.getfixturevalue(f"{kind}_port")
    custom = sandbox_backup(sandbox, "*.dump")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / custom.name).write_bytes(custom.read_bytes())
    sets = {"db": {"of": "postgres.main", "location": str(tmp_path / "db" / "*.dump"), "format": "pg_custom",
                   "rpo": "24h", "rto": "10m", "manifest": "SHA256SUMS"}}
    environment = remote_environment(sandbox, sshd, sets, host=f"ssh://root@127.0.0.1:{port}", timeout_s=1)
    run = run_checks(write_env(environment), "-m", "nightly", "-k", "backup")
    records = {r["check"]: r for r in run.results["checks"] if r["where"] == "backups.db"}
    first = records.pop("test_latest_backup_exists")
    assert run.ret == 1 and first["outcome"] == "error"
    said = (f"could not measure on backups.db: ssh ssh://root@127.0.0.1:{port}: " + (
        f"ssh: connect to host 127.0.0.1 port {port}: Connection refused" if kind == "refused" else ""))
    assert first["message"].startswith(said), first["message"]
    assert kind == "refused" or "timed out" in first["message"]
    assert {r["outcome"] for r in records.values()} == {"skipped"}
    assert records["test_latest_custom_dump_reads_through"]["message"].startswith("backups.db is unreachable: ")
    assert first["duration_s"] < 1 + 2, first["duration_s"]  # one ConnectTimeout (1 s), not a hang
    assert sum(r["duration_s"] for r in records.values()) < 1, records  # the rest skip without trying


def test_a_hung_read_on_the_host_errors_at_read_timeout_never_as_a_verdict(sshd, tmp_path):  # noqa: F811
    """A FIFO nobody writes to blocks a read as a hung mount would: the host's ``timeout`` cuts it, and the
    check errors; a stream cut there is never judged as a truncated backup."""
    fifo = tmp_path / "db.dump"
    os.mkfifo(fifo)
    host = HostTarget.model_validate({**sshd, "name": "db1", "timeout_s": 5})
    location = SshLocation(str(tmp_path / "*.dump"), host, read_timeout_s=1)
    hung = BackupFile("db.dump", str(fifo), 0, datetime.now(timezone.utc))
    try:
        for read, command in ((location.sha256, f"sha256sum -b < {fifo}"),
                              (lambda b: location.piped(b, ["pg_restore", "-f", "/dev/null"]), f"cat -- {fifo}")):
            started = time.monotonic()
            with pytest.raises(ProbeError) as error:
                read(hung)
            assert str(error.value) == f"{command}: no answer within 1 s on {sshd['host']}"
            assert time.monotonic() - started < 1 + 3
    finally:
        location.close()
