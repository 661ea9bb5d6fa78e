"""Where a backup set's files are, checked when the file loads: a host target with ``on:``, schemes opsproof
reads, ``files`` sets without a database source, and retention policies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsproof.environment import load_environment
from opsproof.errors import ConfigError

BASE = """\
name: staging
tier: staging
postgres:
  main: {dsn: "postgresql://bot@db:5432/app"}
host:
  db1: {host: "ssh://backup@db1.internal:22", ssh_identity_file: ~/.ssh/opsproof, timeout_s: 5}
  here: {host: "local://"}
  legacy: {host: "paramiko://backup@old.internal"}
backups:
"""


def load(tmp_path, backups: str):
    path = tmp_path / "staging.yaml"
    path.write_text(BASE + backups)
    return load_environment(path, {})


def test_a_set_on_a_host_loads_with_a_bare_yaml_on_key(tmp_path):
    """YAML 1.1 reads a bare ``on`` key as the boolean true; a backup set takes it as ``on``."""
    loaded = load(tmp_path, """\
  db:
    of: postgres.main
    on: host.db1
    location: /backups/db_*.sql.gz
    format: pg_plain_gz
    manifest: SHA256SUMS
    rpo: 24h
    rto: 4h
    retention: {min_count: 7, oldest_min_age: 7d}
  uploads:
    format: files
    on: host.db1
    location: /var/backups/bunty/uploads-*.tar.gz
    rpo: 24h
    rto: 4h
  secrets:
    format: files
    of: host.here
    location: /srv/backups/secrets-*.zip
    rpo: 7d
    rto: 1h
""")
    sets = loaded.environment.backups
    assert (sets["db"].on, sets["db"].host_in(loaded.environment).host) == ("host.db1", "ssh://backup@db1.internal:22")
    assert (sets["db"].retention.min_count, sets["db"].retention.oldest_min_age) == (7, 604800)
    assert (sets["uploads"].of, sets["uploads"].on, sets["secrets"].of) == (None, "host.db1", "host.here")


@pytest.mark.parametrize("location, scheme", [("ssh://db1/backups/db_*.sql.gz", "ssh"),
                                              ("sftp://db1/backups/db_*.sql.gz", "sftp"),
                                              ("gs://bucket/db_*.sql.gz", "gs"), ("file:///backups/db.sql.gz", "file")])
def test_an_unsupported_location_scheme_is_rejected_at_load(tmp_path, location, scheme):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {{of: postgres.main, format: pg_plain_gz, location: '{location}', rpo: 24h, rto: 1h}}\n")
    assert (error.value.key_path, error.value.problem) == (
        "backups.db.location", f"scheme {scheme}:// is not supported: give a local (or mounted) path glob, "
                               f"s3://bucket/prefix, or a path glob on a host target with on: host.NAME")


@pytest.mark.parametrize("spec, key_path, problem", [
    ("{of: postgres.main, on: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}",
     "backups.db.on", "postgres.main is not a host target: on: names a host target of this file (host.NAME)"),
    ("{of: postgres.main, on: host.db9, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}",
     "backups.db.on", "host.db9 is not a target in this environment"),
    ("{of: postgres.main, on: host.legacy, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}", "backups.db.on",
     "host.legacy is paramiko://backup@old.internal; backups on a host are read over OpenSSH "
     "(ssh://) or locally (local://)"),
    ("{of: postgres.main, on: host.db1, format: pg_custom, location: 's3://b/*.dump', rpo: 24h, rto: 1h}",
     "backups.db", "on: an s3:// location is read from S3, not from a host: remove on"),
    ("{of: postgres.main, on: host.db1, format: pg_basebackup, location: /b/base_*, rpo: 24h, rto: 1h}",
     "backups.db", "on: format pg_basebackup is verified in a local (or mounted) directory; over ssh: pg_custom, "
                   "pg_plain, pg_plain_gz, mysqldump_gz, redis_rdb, files"),
    ("{of: postgres.main, on: host.db1, format: pgbackrest, pgbackrest: {stanza: main}, rpo: 24h, rto: 1h}",
     "backups.db", "on: needs a location (the path glob on that host)"),
    ("{of: postgres.main, on: host.db1, format: pg_custom, location: 'backups/*.dump', rpo: 24h, rto: 1h}",
     "backups.db", "location: on a host, an absolute path glob of letters, digits, ._-+/:@%,=~ and * ? [ ] ! "
                   "(the host's shell expands it), not 'backups/*.dump'"),
    ("{of: postgres.main, on: host.db1, format: pg_custom, location: '/b/$(reboot)*.dump', rpo: 24h, rto: 1h}",
     "backups.db", "location: on a host, an absolute path glob of letters, digits, ._-+/:@%,=~ and * ? [ ] ! "
                   "(the host's shell expands it), not '/b/$(reboot)*.dump'"),
    ("{of: postgres.main, on: host.db1, format: pg_custom, location: /b/*.dump, manifest: 'sums; rm x', "
     "rpo: 24h, rto: 1h}", "backups.db", "manifest: on a host, an absolute path glob of letters, digits, "
                                         "._-+/:@%,=~ and * ? [ ] ! (the host's shell expands it), not 'sums; rm x'"),
    ("{format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}", "backups.db",
     "format pg_custom needs of: the target it backs up"),
    ("{of: postgres.main, format: files, location: /b/*.tar.gz, rpo: 24h, rto: 1h}", "backups.db",
     "format files backs up host targets, not postgres.main"),
    ("{of: host.db9, format: files, location: /b/*.tar.gz, rpo: 24h, rto: 1h}", "backups.db.of",
     "host.db9 is not a target in this environment"),
    ("{format: files, location: /b/*.tar.gz, rpo: 24h, rto: 1h, restore_into: {dsn: 'postgresql://x@h/d', "
     "scratch: true}}", "backups.db",
     "restore_into: the restore drill restores logical dumps, pgbackrest and pg_basebackup, not files"),
    ("{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, retention: {}}",
     "backups.db.retention", "give min_count, oldest_min_age or both"),
    ("{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, "
     "retention: {oldest_min_age: a week}}", "backups.db.retention.oldest_min_age",
     "'a week' is not a duration like 24h, 30m, 1h30m or 7d"),
    ("{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, retention: {min_count: 0}}",
     "backups.db.retention.min_count", "Input should be greater than or equal to 1"),
    ("{of: postgres.main, format: pgbackrest, pgbackrest: {stanza: main}, rpo: 24h, rto: 1h, "
     "retention: {min_count: 2}}", "backups.db",
     "retention: judged on the backups listed at a location, not on pgbackrest's catalogue"),
])
def test_wrong_locations_and_policies_are_rejected_with_the_key_path(tmp_path, spec, key_path, problem):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {spec}\n")
    assert (error.value.key_path, error.value.problem) == (key_path, problem)


def test_an_ssh_location_exits_4_with_one_line_naming_the_key(tmp_path):
    path = tmp_path / "staging.yaml"
    path.write_text(BASE + "  db: {of: postgres.main, format: pg_plain_gz, location: 'ssh://db1/backups/db_*.sql.gz',"
                           " rpo: 24h, rto: 1h}\n")
    result = subprocess.run([sys.executable, "-m", "opsproof.cli", "validate", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        f"opsproof: {path}: backups.db.location: scheme ssh:// is not supported: give a local (or mounted) path glob, "
        "s3://bucket/prefix, or a path glob on a host target with on: host.NAME"]
