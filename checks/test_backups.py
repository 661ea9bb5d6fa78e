"""Backups, nightly and read-only: the latest exists, is fresh, full-sized, matches its checksum and is whole."""

import math
from datetime import datetime, timezone

import pytest

pytestmark = [pytest.mark.nightly, pytest.mark.backup]

FILE_FORMATS = ("pg_custom", "pg_plain", "pg_plain_gz", "mysqldump_gz", "redis_rdb")
LOCATION_FORMATS = (*FILE_FORMATS, "pg_basebackup")  # listed at a location: base backups are directories
AGE_UNITS = (("h", 3600), ("min", 60), ("s", 1))


def age_within_rpo(evidence, backups_target, measure: str, age_s: float) -> None:
    """The evidence every freshness check gives: ``<measure>_<unit>`` against ``rpo_<unit>``.

    The unit follows the RPO (hours from 2 h, minutes from 2 min, else seconds) so both numbers stay
    readable, and the age is rounded up so the evidence never shows a stale backup as within the RPO.
    """
    __tracebackhide__ = True
    unit, unit_s = next(((u, s) for u, s in AGE_UNITS if backups_target.rpo >= 2 * s), ("s", 1))
    rpo = round(backups_target.rpo / unit_s, 2)
    evidence.record(f"rpo_{unit}", rpo)
    evidence.expect(f"{measure}_{unit}", math.ceil(age_s / unit_s * 100) / 100, "<=", rpo)


@pytest.mark.p0
@pytest.mark.formats(*LOCATION_FORMATS)
def test_latest_backup_exists(backups_target, backups, evidence):
    latest = backups.latest()
    evidence.record("backups_found", len(backups.files()))
    evidence.expect("latest_backup", latest.name if latest else "none", "!=", "none")


@pytest.mark.p0
@pytest.mark.formats(*LOCATION_FORMATS)
def test_latest_backup_within_rpo(backups_target, backups, evidence):
    latest = backups.require_latest()
    evidence.record("backup_id", latest.name)
    age_within_rpo(evidence, backups_target, "age", backups.age_s(latest))


@pytest.mark.p1
@pytest.mark.formats(*FILE_FORMATS)
def test_latest_backup_size_within_history(backups_target, backups, evidence):
    latest, floor = backups.require_latest(), backups.size_floor_bytes()
    if floor is None:
        pytest.skip(f"{backups_target.where} has no earlier backup to compare sizes with")
    evidence.record("previous_sizes_bytes", backups.previous_sizes())
    evidence.expect("size_bytes", latest.size_bytes, ">=", floor)


@pytest.mark.p1
@pytest.mark.formats(*FILE_FORMATS)
def test_latest_backup_matches_manifest_checksum(backups_target, backups, evidence):
    if not backups_target.manifest:
        pytest.skip(f"{backups_target.where} has no checksum manifest")
    latest = backups.require_latest()
    recorded = backups.manifest_sha256(latest) or f"no entry for {latest.name}"
    evidence.expect("sha256", backups.sha256(latest), "==", recorded)


@pytest.mark.p0
@pytest.mark.formats("pg_plain_gz", "mysqldump_gz")
def test_latest_backup_gzip_stream_complete(backups_target, backups, evidence):
    evidence.expect("gzip_stream", backups.gzip_stream(backups.require_latest()), "==", "complete")


@pytest.mark.p0
@pytest.mark.formats("pg_plain", "pg_plain_gz", "mysqldump_gz")
def test_latest_dump_has_closing_marker(backups_target, backups, evidence):
    evidence.expect("closing_marker", backups.closing_marker(backups.require_latest()), "==", "present")


@pytest.mark.p0
@pytest.mark.formats("pg_custom")
def test_latest_custom_dump_reads_through(backups_target, backups, evidence):
    evidence.expect("pg_restore_read", backups.custom_dump_read(backups.require_latest()), "==", "readable")


@pytest.mark.p0
@pytest.mark.formats("pg_basebackup")
def test_latest_base_backup_passes_pg_verifybackup(backups_target, backups, evidence):
    latest = backups.require_latest()
    evidence.record("backup_id", latest.name)
    evidence.expect("pg_verifybackup", backups.verify_base_backup(latest), "==", "ok")


@pytest.mark.p0
@pytest.mark.formats("redis_rdb")
def test_latest_rdb_passes_redis_check_rdb(backups_target, backups, evidence):
    evidence.expect("redis_check_rdb", backups.rdb_check(backups.require_latest()), "==", "ok")


@pytest.mark.p0
@pytest.mark.formats("redis_rdb")
def test_redis_last_save_within_rpo(backups_target, backup_source, evidence):
    """The RDB the server would hand to a backup job; whether its saves succeed is a redis-area check."""
    age_within_rpo(evidence, backups_target, "last_save_age", backup_source.seconds_since_save())


@pytest.mark.p0
@pytest.mark.formats("pgbackrest")
def test_pgbackrest_latest_backup_ok(backups_target, backups, evidence):
    repository = backups.pgbackrest()
    evidence.expect("stanza_status", repository.status(), "==", "ok")
    latest = repository.latest()
    evidence.record("backup_id", latest["label"])
    evidence.expect("backup_error", latest["error"], "==", False)


@pytest.mark.p0
@pytest.mark.formats("pgbackrest")
def test_pgbackrest_latest_backup_within_rpo(backups_target, backups, evidence):
    latest = backups.pgbackrest().latest()
    evidence.expect("latest_backup", latest["label"] if latest else "none", "!=", "none")
    age_s = (datetime.now(timezone.utc) - latest["stopped_at"]).total_seconds()
    age_within_rpo(evidence, backups_target, "age", age_s)


@pytest.mark.p1
@pytest.mark.formats("pgbackrest")
def test_pgbackrest_verify_passes(backups_target, backups, evidence):
    if not backups_target.pgbackrest.verify:
        pytest.skip(f"{backups_target.where} does not configure pgbackrest verify")
    evidence.expect("pgbackrest_verify", backups.pgbackrest().verify(), "==", "ok")


@pytest.mark.p0
@pytest.mark.formats("barman")
def test_barman_latest_backup_done(backups_target, backups, evidence):
    latest = backups.barman().latest()
    evidence.expect("latest_backup", latest["backup_id"] if latest else "none", "!=", "none")
    evidence.record("backup_id", latest["backup_id"])
    evidence.expect("backup_status", latest["status"], "==", "DONE")


@pytest.mark.p0
@pytest.mark.formats("barman")
def test_barman_latest_backup_within_rpo(backups_target, backups, evidence):
    done = backups.barman().latest_done()
    evidence.expect("latest_done_backup", done["backup_id"] if done else "none", "!=", "none")
    age_s = (datetime.now(timezone.utc) - done["ended_at"]).total_seconds()
    age_within_rpo(evidence, backups_target, "age", age_s)


@pytest.mark.p1
@pytest.mark.formats("barman")
def test_barman_check_passes(backups_target, backups, evidence):
    evidence.expect("barman_check", backups.barman().check(), "==", "ok")


@pytest.mark.p1
@pytest.mark.formats("pgbackrest")
def test_wal_archiving_keeps_up(backups_target, backup_source, evidence):
    failed_after_last_success = backup_source.scalar(
        "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) FROM pg_stat_archiver"
    )
    evidence.record("archived_count", backup_source.scalar("SELECT archived_count FROM pg_stat_archiver"))
    evidence.expect("archiver_failing", failed_after_last_success, "==", False)


def wal_archive(backups_target, backups):
    """The set's WAL archive, or a skip saying it has none configured."""
    if backups_target.wal_archive is None:
        pytest.skip(f"{backups_target.where} has no wal_archive configured")
    return backups.wal_archive()


@pytest.mark.p0
@pytest.mark.formats("pgbackrest", "pg_basebackup")
def test_wal_archive_continuous_since_latest_base_backup(backups_target, backups, backup_source, evidence):
    """Every segment from the base backup's start to the server's last finished one is archived (PITR works)."""
    summary = wal_archive(backups_target, backups).continuity(backup_source)
    for key in ("range_start", "range_end", "timeline", "segments_checked", "found", "missing_delayed",
                "missing_uploading", "uploading_visible", "unrecognised_files"):
        evidence.record(key, summary[key])
    evidence.record("missing_lost", summary["missing_lost"])
    first = summary["missing_lost"][0] if summary["missing_lost"] else None
    evidence.expect("missing_lost_segments", summary["missing_lost_count"], "==", 0, note=f"first {first}")


@pytest.mark.p1
@pytest.mark.formats("pgbackrest", "pg_basebackup")
def test_wal_archive_timeline_matches_source(backups_target, backups, backup_source, evidence):
    """The archive's newest timeline is the server's: a promoted server archiving elsewhere, or a stray
    timeline from a restored copy archiving here, breaks recovery to the latest point."""
    archive_timeline, server_timeline = wal_archive(backups_target, backups).timelines(backup_source)
    evidence.record("server_timeline", server_timeline)
    evidence.expect("archive_timeline", archive_timeline, "==", server_timeline)
