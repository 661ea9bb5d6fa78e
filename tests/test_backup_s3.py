"""Backups in S3-compatible object storage: the same checks and the drill, against a real local S3 server."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import pytest

from conftest import sandbox_environment
from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port

BUCKET = "backups"


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on a loopback port (a real HTTP S3 API, in memory)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, 30, "moto_server", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_pid(process.pid)
        process.wait()


@pytest.fixture
def bucket(s3_endpoint, sandbox):
    """The sandbox's backups (at least two rounds) uploaded under nightly/, with manifest and row-count sidecars."""
    from opsproof.sandbox import backup, backup_rounds

    if len(backup_rounds(sandbox.state_dir)) < 2:
        backup(sandbox.state_dir)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test-key",
                          aws_secret_access_key="test-secret-key")
    client.create_bucket(Bucket=BUCKET)
    for path in Path(sandbox.variables["SANDBOX_BACKUP_DIR"]).iterdir():
        if path.is_dir():
            continue  # base backups: verified in place by pg_verifybackup, not kept in object storage here
        client.upload_file(str(path), BUCKET, f"nightly/{path.name}")
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def s3_set(endpoint: str, pattern: str, format: str, **extra) -> dict:
    return {"of": "postgres.main", "location": f"s3://{BUCKET}/{pattern}", "format": format, "rpo": "24h",
            "rto": "10m", "manifest": "SHA256SUMS",
            "s3": {"endpoint_url": endpoint, "access_key_id": "${TEST_S3_KEY}",
                   "secret_access_key": "${TEST_S3_SECRET}"},
            **extra}


def test_backups_in_s3_pass_nightly_checks_and_the_drill(sandbox, s3_endpoint, bucket, write_env, run_checks,
                                                          monkeypatch, tmp_path):
    drill_tmp = tmp_path / "tmp"
    drill_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(drill_tmp))  # the drill's fetch directory lands here
    monkeypatch.setenv("TEST_S3_KEY", "test-key")
    monkeypatch.setenv("TEST_S3_SECRET", "test-secret-key")
    monkeypatch.setenv("TEST_PG_ADMIN_PASSWORD", sandbox.pg_admin_password)
    into = {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{sandbox.pg_port}/drill_s3",
            "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}
    sets = {"s3-custom": s3_set(s3_endpoint, "nightly/bankchain-*.dump", "pg_custom", restore_into=into,
                                tables={"users": {"min_rows": 500}}),
            "s3-plain": s3_set(s3_endpoint, "nightly/bankchain-*.sql.gz", "pg_plain_gz"),
            "s3-empty": s3_set(s3_endpoint, "weekly/bankchain-*.dump", "pg_custom")}
    run = run_checks(write_env(sandbox_environment(sandbox, backups=sets)), "--suite", "backup",
                     "--allow-destructive")
    outcomes = {r["id"].split("::")[1]: r["outcome"] for r in run.results["checks"] if r["outcome"] != "skipped"}
    common = ("test_latest_backup_exists", "test_latest_backup_within_rpo",
              "test_latest_backup_size_within_history", "test_latest_backup_matches_manifest_checksum")
    assert outcomes == {
        **{f"{check}[s3-custom]": "passed" for check in (
            *common, "test_latest_custom_dump_reads_through", "test_latest_backup_restores_and_verifies_within_rto")},
        **{f"{check}[s3-plain]": "passed" for check in (
            *common, "test_latest_backup_gzip_stream_complete", "test_latest_dump_has_closing_marker")},
        **{f"{check}[s3-empty]": outcome for check, outcome in (
            ("test_latest_backup_exists", "failed"), ("test_latest_backup_within_rpo", "error"),
            ("test_latest_backup_size_within_history", "error"),
            ("test_latest_backup_matches_manifest_checksum", "error"),
            ("test_latest_custom_dump_reads_through", "error"))},
    }, run.output
    assert run.record("test_latest_backup_exists", "s3-empty")["message"] == (
        "latest_backup ('none') != 'none' on backups.s3-empty")
    drill = run.record("test_latest_backup_restores_and_verifies_within_rto", "s3-custom")["drill"]
    assert drill["outcome"] == "passed" and drill["cleanup_confirmed"] and drill["backup_id"].endswith(".dump")
    assert "test-secret-key" not in (run.run_dir / "results.json").read_text()
    assert not list(drill_tmp.glob("opsproof-drill-*"))
