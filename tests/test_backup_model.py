"""Backup sets in environment files: durations, sources that exist, formats that fit, secrets registered."""

import pytest

from opsproof.environment import load_environment
from opsproof.environment.base import parse_duration
from opsproof.errors import ConfigError

BASE = """\
name: staging
tier: staging
postgres:
  main: {dsn: "postgresql://bot@db:5432/app"}
redis:
  cache: {url: "redis://cache:6379/0"}
backups:
"""


def load(tmp_path, backups: str, variables=None):
    path = tmp_path / "staging.yaml"
    path.write_text(BASE + backups)
    return load_environment(path, variables or {})


@pytest.mark.parametrize("text, seconds", [("24h", 86400), ("30m", 1800), ("1h30m", 5400), ("7d", 604800),
                                           ("0.5s", 0.5), (90, 90)])
def test_durations_parse_into_seconds(text, seconds):
    assert parse_duration(text) == seconds


def test_a_full_backup_set_loads_with_secrets_registered(tmp_path):
    loaded = load(tmp_path, """\
  db:
    of: postgres.main
    location: s3://backups/db/app-*.dump
    s3: {endpoint_url: "https://s3.example.com", access_key_id: AKIA1, secret_access_key: "${S3_SECRET}"}
    format: pg_custom
    rpo: 24h
    rto: 4h
    manifest: SHA256SUMS
    tables: {users: {min_rows: 10, timestamp: created_at}}
    restore_into: {dsn: "postgresql://restore@scratch:5432/drill", password: "${SCRATCH_PW}", scratch: true}
""", {"S3_SECRET": "s3-secret-value", "SCRATCH_PW": "scratch-password"})
    backup = loaded.environment.backups["db"]
    assert (backup.where, backup.rpo, backup.rto, backup.restore_into.scratch) == ("backups.db", 86400, 14400, True)
    assert {"s3-secret-value", "scratch-password"} <= loaded.secrets


@pytest.mark.parametrize("spec, key_path, problem", [
    ("{of: postgres.other, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}", "backups.db.of",
     "postgres.other is not a target in this environment"),
    ("{of: redis.cache, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}", "backups.db",
     "format pg_custom backs up postgres targets, not redis.cache"),
    ("{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: a day, rto: 1h}", "backups.db.rpo",
     "'a day' is not a duration like 24h, 30m, 1h30m or 7d"),
    ("{of: postgres.main, format: pgbackrest, rpo: 24h, rto: 1h}", "backups.db",
     "format pgbackrest needs a pgbackrest: {stanza: ...} section"),
    ("{of: postgres.main, format: barman, rpo: 24h, rto: 1h}", "backups.db",
     "format barman needs a barman: {server: ...} section"),
    ("{of: postgres.main, format: pg_basebackup, location: 's3://b/base_*', rpo: 24h, rto: 1h}", "backups.db",
     "format pg_basebackup verifies a local (or mounted) directory, not s3://"),
    ("{of: postgres.main, format: pg_custom, rpo: 24h, rto: 1h}", "backups.db",
     "format pg_custom needs a location (directory glob or s3:// URL)"),
    ("{of: redis.cache, format: redis_rdb, location: /b/*.rdb, rpo: 24h, rto: 1h, restore_into: "
     "{dsn: 'postgresql://x@h/d', scratch: true}}", "backups.db",
     "restore_into: the restore drill restores logical dumps, pgbackrest and pg_basebackup, not redis_rdb"),
    ("{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, size_drop_max_fraction: 2}",
     "backups.db.size_drop_max_fraction", "Input should be less than 1"),
    ("{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, wal_archive: {location: /w}}",
     "backups.db", "wal_archive: WAL continuity is checked for pgbackrest and pg_basebackup sets, not pg_custom"),
    ("{of: postgres.main, format: pg_basebackup, location: /b/base_*, rpo: 24h, rto: 1h, wal_archive: {}}",
     "backups.db", "wal_archive: format pg_basebackup needs wal_archive.location (the archive directory)"),
    ("{of: postgres.main, format: pg_basebackup, location: /b/base_*, rpo: 24h, rto: 1h, "
     "wal_archive: {location: /w, delayed_after: soon}}", "backups.db.wal_archive.delayed_after",
     "'soon' is not a duration like 24h, 30m, 1h30m or 7d"),
    ("{of: postgres.main, format: pg_basebackup, location: /b/base_*, rpo: 24h, rto: 1h, "
     "wal_archive: {location: 's3://b/wal'}}", "backups.db.wal_archive",
     "location: a local (or mounted) WAL archive directory, not a URL"),
    ("{of: postgres.main, format: pg_basebackup, location: /b/base_*, rpo: 24h, rto: 1h, "
     "wal_archive: {location: /w, from_start: true}}", "backups.db.wal_archive.from_start",
     "unknown key"),
])
def test_wrong_backup_sets_are_rejected_with_the_key_path(tmp_path, spec, key_path, problem):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {spec}\n")
    assert (error.value.key_path, error.value.problem) == (key_path, problem)


def test_two_backup_sets_restoring_into_one_scratch_database_are_rejected(tmp_path):
    import yaml

    into = {"dsn": "postgresql://restore@scratch:5432/drill", "scratch": True}
    sets = {name: {"of": "postgres.main", "location": "/backups/*.dump", "format": "pg_custom", "rpo": "24h",
                   "rto": "1h", "restore_into": into} for name in ("nightly", "weekly")}
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump({"tier": "staging", "postgres": {"main": {"dsn": "postgresql://bot@db/app"}},
                                    "backups": sets}))
    with pytest.raises(ConfigError, match="backups.weekly.restore_into: the same scratch database as backups.nightly"):
        load_environment(path, {})


def test_wal_archive_defaults_and_pgbackrest_needs_no_location(tmp_path):
    loaded = load(tmp_path, """\
  repo:
    of: postgres.main
    format: pgbackrest
    pgbackrest: {stanza: main}
    rpo: 24h
    rto: 4h
    wal_archive: {}
""")
    wal = loaded.environment.backups["repo"].wal_archive
    assert (wal.location, wal.delayed_after, wal.from_backup) == (None, 300.0, True)


def test_a_wrong_wal_archive_exits_4_with_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "staging.yaml"
    path.write_text(BASE + "  db: {of: postgres.main, format: barman, barman: {server: pg}, rpo: 24h, rto: 1h, "
                           "wal_archive: {location: /w}}\n")
    result = subprocess.run([sys.executable, "-m", "opsproof.cli", "validate", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        f"opsproof: {path}: backups.db: wal_archive: WAL continuity is checked for pgbackrest and pg_basebackup sets, "
        "not barman"]
