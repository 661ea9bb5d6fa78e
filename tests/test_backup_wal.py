"""WAL archive continuity against a real cluster archiving with `cp %p <dir>/%f`, and a pgBackRest repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from conftest import sandbox_environment
from pgbackrest_cluster import archived  # noqa: F401 - a cluster archiving into pgBackRest, one full backup
from test_backup_pgbackrest import environment as pgbackrest_environment
from opsproof.backups import walnames
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.processes import free_port

ADMIN_PASSWORD = "wal-archive-admin-password"
CHECKS = ("test_wal_archive_continuous_since_latest_base_backup", "test_wal_archive_timeline_matches_source")


class Cluster:
    """A cluster archiving each finished segment into ``archive``, with one plain base backup in ``base``."""

    def __init__(self, root: Path, data_dir: Path, port: int, archive: Path):
        self.root, self.data_dir, self.port = root, data_dir, port
        self.archive, self.base = archive, root / "base"

    def sql(self, statement: str):
        with psycopg.connect(host="127.0.0.1", port=self.port, user="opsproof_admin", dbname="postgres",
                             password=ADMIN_PASSWORD, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def start(self) -> None:
        sandbox_pg.start(self.data_dir, self.port)

    def switch(self, times: int = 1) -> None:
        """Write, finish the segment, and wait until the archiver has copied every finished one."""
        for _ in range(times):
            self.sql("INSERT INTO filler SELECT generate_series(1, 1000)")
            self.sql("SELECT pg_switch_wal()")
        walfile, lsn = self.sql("SELECT pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn()::text")[0]
        last = walnames.name(int(walfile[:8], 16), walnames.segment_of_lsn(lsn) - 1)
        deadline = time.monotonic() + 90  # after failures the archiver may sleep up to 60 s
        while not (self.archive / last).exists():
            assert time.monotonic() < deadline, f"{last} was not archived"
            time.sleep(0.1)

    def backup_start(self) -> str:
        label = next(self.base.glob("base_*/backup_label")).read_text()
        return label.split("(file ", 1)[1][:24]


@pytest.fixture(scope="module")
def cluster():
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="opsproof-wal-"))
    os.chmod(root, 0o755)
    data_dir = sandbox_pg.create_cluster(root, port, ADMIN_PASSWORD)
    server = Cluster(root, data_dir, port, sandbox_pg.archive_wal(data_dir))
    server.start()
    try:
        server.sql("CREATE TABLE filler (n int)")
        server.switch(2)  # segments before the base backup: outside the range checked
        taken = subprocess.run(
            ["pg_basebackup", "-h", "127.0.0.1", "-p", str(port), "-U", "opsproof_admin", "-D",
             str(root / "base" / "base_1"), "-X", "none", "-c", "fast"],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, PGPASSWORD=ADMIN_PASSWORD))
        assert taken.returncode == 0, taken.stderr
        server.switch(4)
        yield server
    finally:
        sandbox_pg.stop(data_dir)
        sandbox_pg.remove(data_dir, root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def archive(cluster, tmp_path) -> Path:
    """A private copy of the archive as it is now, to damage."""
    cluster.switch()
    copy = tmp_path / "wal"
    shutil.copytree(cluster.archive, copy)
    return copy


def environment(sandbox, cluster, archive: Path, **wal_archive) -> dict:
    base = sandbox_environment(sandbox)
    base["postgres"]["walsrc"] = {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{cluster.port}/postgres",
                                  "password": ADMIN_PASSWORD, "connect_timeout_s": 2}
    base["backups"] = {"wal": {"of": "postgres.walsrc", "format": "pg_basebackup", "rpo": "24h", "rto": "1h",
                               "location": f"{cluster.base}/base_*",
                               "wal_archive": {"location": str(archive), **wal_archive}}}
    return base


def measured(record: dict) -> dict:
    return {m["measure"]: m["value"] for m in record["measurements"]}


def segments(archive: Path) -> list[str]:
    return sorted(p.name for p in archive.iterdir() if walnames.archived_name(p.name) == p.name)


def test_continuous_archive_passes_from_the_base_backup_start(sandbox, cluster, archive, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, cluster, archive)), "-k", "wal_archive")
    assert run.ret == 0, run.output
    for check in CHECKS:
        assert run.record(check, "wal")["outcome"] == "passed", check
    values = measured(run.record(CHECKS[0], "wal"))
    assert values["range_start"] == cluster.backup_start() and values["range_end"] == segments(archive)[-1]
    assert values["segments_checked"] == values["found"] >= 5
    assert (values["missing_lost_segments"], values["missing_lost"], values["missing_delayed"]) == (0, [], 0)
    assert measured(run.record(CHECKS[1], "wal"))["archive_timeline"] == 1


def test_a_deleted_middle_segment_is_lost_and_named(sandbox, cluster, archive, write_env, run_checks):
    middle = segments(archive)[-3]
    (archive / middle).unlink()
    run = run_checks(write_env(environment(sandbox, cluster, archive)), "-k", "continuous")
    assert run.ret == 1
    assert run.record(CHECKS[0], "wal")["message"] == (
        f"missing_lost_segments (1) == 0 on backups.wal: first {middle}")


def test_a_missing_newest_segment_is_delayed_then_lost(sandbox, cluster, archive, write_env, run_checks):
    newest = segments(archive)[-1]
    (archive / newest).unlink()
    run = run_checks(write_env(environment(sandbox, cluster, archive)), "-k", "continuous")
    assert run.ret == 0, run.output
    values = measured(run.record(CHECKS[0], "wal"))
    assert (values["missing_delayed"], values["missing_lost_segments"], values["uploading_visible"]) == (1, 0, True)
    time.sleep(2)
    run = run_checks(write_env(environment(sandbox, cluster, archive, delayed_after="1s")), "-k", "continuous")
    assert run.record(CHECKS[0], "wal")["message"] == (
        f"missing_lost_segments (1) == 0 on backups.wal: first {newest}")


def test_a_segment_queued_on_the_server_is_uploading(sandbox, cluster, write_env, run_checks, tmp_path):
    command = cluster.sql("SHOW archive_command")[0][0]
    cluster.sql("ALTER SYSTEM SET archive_command = 'false'")
    cluster.sql("SELECT pg_reload_conf()")
    try:
        cluster.sql("INSERT INTO filler SELECT 1")
        cluster.sql("SELECT pg_switch_wal()")
        run = run_checks(write_env(environment(sandbox, cluster, cluster.archive)), "-k", "continuous")
        assert run.ret == 0, run.output
        values = measured(run.record(CHECKS[0], "wal"))
        assert (values["missing_uploading"], values["missing_delayed"], values["missing_lost_segments"]) == (1, 0, 0)
    finally:
        cluster.sql(f"ALTER SYSTEM SET archive_command = '{command}'")
        cluster.sql("SELECT pg_reload_conf()")
        cluster.switch()


def test_truncated_segment_is_lost_and_garbage_is_listed(sandbox, cluster, archive, write_env, run_checks):
    truncated = segments(archive)[-2]
    os.truncate(archive / truncated, 8192)
    (archive / "notes.txt").write_text("not WAL")
    (archive / "00000001000000000000000G").write_text("not a segment name")
    run = run_checks(write_env(environment(sandbox, cluster, archive)), "-k", "continuous")
    record = run.record(CHECKS[0], "wal")
    assert record["message"] == f"missing_lost_segments (1) == 0 on backups.wal: first {truncated}"
    assert sorted(measured(record)["unrecognised_files"]) == ["00000001000000000000000G", "notes.txt"]


def test_a_stray_timeline_in_the_archive_fails_the_timeline_check(sandbox, cluster, archive, write_env, run_checks):
    switch_segment = walnames.parse(segments(archive)[-1])
    switch_lsn = (switch_segment.number + 1) * walnames.DEFAULT_SEGMENT_BYTES
    lsn = f"{switch_lsn >> 32:X}/{switch_lsn & 0xFFFFFFFF:X}"
    (archive / "00000002.history").write_text(f"1\t{lsn}\tno recovery target specified\n")
    shutil.copy(archive / segments(archive)[-1], archive / walnames.name(2, switch_segment.number + 1))
    run = run_checks(write_env(environment(sandbox, cluster, archive)), "-k", "wal_archive")
    assert run.record(CHECKS[1], "wal")["message"] == "archive_timeline (2) == 1 on backups.wal"
    assert run.record(CHECKS[0], "wal")["outcome"] == "passed"  # the server's own timeline is whole


def test_from_backup_false_starts_at_the_oldest_archived_segment(sandbox, cluster, archive, write_env, run_checks):
    run = run_checks(write_env(environment(sandbox, cluster, archive, from_backup=False)), "-k", "continuous")
    assert run.ret == 0, run.output
    assert measured(run.record(CHECKS[0], "wal"))["range_start"] == segments(archive)[0] < cluster.backup_start()


def test_a_stopped_source_server_is_a_clear_probe_error(sandbox, cluster, archive, write_env, run_checks):
    sandbox_pg.stop(cluster.data_dir)
    try:
        run = run_checks(write_env(environment(sandbox, cluster, archive)), "-k", "wal_archive")
    finally:
        cluster.start()
    record = run.record(CHECKS[0], "wal")
    assert run.ret == 1 and record["outcome"] == "error"
    assert record["message"].startswith("could not measure on backups.wal: connect: "), record["message"]
    assert "Connection refused" in record["message"] or "connection failed" in record["message"]


def test_sets_without_wal_archive_skip_with_the_reason(sandbox, cluster, archive, write_env, run_checks):
    env = environment(sandbox, cluster, archive)
    del env["backups"]["wal"]["wal_archive"]
    run = run_checks(write_env(env), "-k", "wal_archive")
    assert run.record(CHECKS[0], "wal")["message"] == "backups.wal has no wal_archive configured"
    assert run.record(CHECKS[0], "wal")["outcome"] == "skipped"


# --- pgBackRest: the stanza's repository archive, listed with `pgbackrest repo-ls` -----------------------------


def repository_segments(archived) -> list[Path]:
    return sorted((archived.root / "repo" / "archive" / "demo").glob("*-*/*/0*-*"), key=lambda p: p.name)


def switched(archived, times: int) -> None:
    """Write and finish ``times`` segments, and wait until pgBackRest has every finished one."""
    for _ in range(times):
        archived.sql("CREATE TABLE IF NOT EXISTS wal_filler AS SELECT 1 AS n")
        archived.sql("INSERT INTO wal_filler SELECT 1")
        archived.sql("SELECT pg_switch_wal()")
    walfile = archived.sql("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")[0][0]  # the last finished segment
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(walfile) for p in repository_segments(archived)):
        assert time.monotonic() < deadline, f"{walfile} was not archived"
        time.sleep(0.1)


def test_pgbackrest_archive_is_checked_from_archive_start_of_the_latest_backup(sandbox, archived, write_env,
                                                                              run_checks):
    switched(archived, 3)
    env = pgbackrest_environment(sandbox, archived, verify=False)
    env["backups"]["repo"]["wal_archive"] = {}
    run = run_checks(write_env(env), "-k", "wal_archive")
    assert run.ret == 0, run.output
    values = measured(run.record(CHECKS[0], "repo"))
    assert values["segments_checked"] == values["found"] >= 3 and values["missing_lost_segments"] == 0
    assert run.record(CHECKS[1], "repo")["outcome"] == "passed"
    middle = repository_segments(archived)[-2]
    moved = middle.with_name("moved-away")
    middle.rename(moved)
    try:
        run = run_checks(write_env(env), "-k", "continuous")
        assert run.record(CHECKS[0], "repo")["message"] == (
            f"missing_lost_segments (1) == 0 on backups.repo: first {middle.name[:24]}")
        env["backups"]["repo"]["wal_archive"] = {"location": str(archived.root / "repo" / "archive" / "demo")}
        run = run_checks(write_env(env), "-k", "continuous")  # the same repository read as a directory
        assert run.record(CHECKS[0], "repo")["message"] == (
            f"missing_lost_segments (1) == 0 on backups.repo: first {middle.name[:24]}")
        assert measured(run.record(CHECKS[0], "repo"))["unrecognised_files"] == ["moved-away"]
    finally:
        moved.rename(middle)
