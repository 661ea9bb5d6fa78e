"""pgBackRest checks against a real stanza: a dedicated cluster archiving WAL, one full backup."""

from __future__ import annotations

import re
import time

from conftest import sandbox_environment
from pgbackrest_cluster import ADMIN_PASSWORD, archived  # noqa: F401 - the module-scoped stanza fixture


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
