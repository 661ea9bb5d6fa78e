"""Backups, nightly and read-only: the latest exists, is fresh, full-sized, matches its checksum and is whole."""

import math
from datetime import datetime, timezone

import pytest

from opsproof.kubernetes.pods import parse_time

pytestmark = [pytest.mark.nightly, pytest.mark.backup]

FILE_FORMATS = ("pg_custom", "pg_plain", "pg_plain_gz", "mysqldump_gz", "redis_rdb", "files")
LOCATION_FORMATS = (*FILE_FORMATS, "pg_basebackup")  # listed at a location: base backups are directories
AGE_UNITS = (("h", 3600), ("min", 60), ("s", 1))


def age_within(evidence, measure: str, age_s: float, limit_s: float, limit_name: str | None = None) -> None:
    """``<measure>_<unit>`` against a limit in the same unit (and ``<limit_name>_<unit>`` recorded).

    The unit follows the limit (hours from 2 h, minutes from 2 min, else seconds) so both numbers stay
    readable, and the age is rounded up so the evidence never shows a stale backup as within its limit.
    """
    __tracebackhide__ = True
    unit, unit_s = next(((u, s) for u, s in AGE_UNITS if limit_s >= 2 * s), ("s", 1))
    limit = round(limit_s / unit_s, 2)
    if limit_name:
        evidence.record(f"{limit_name}_{unit}", limit)
    evidence.expect(f"{measure}_{unit}", math.ceil(age_s / unit_s * 100) / 100, "<=", limit)


def age_within_rpo(evidence, backups_target, measure: str, age_s: float) -> None:
    """The evidence every freshness check gives: ``<measure>_<unit>`` against ``rpo_<unit>``."""
    __tracebackhide__ = True
    age_within(evidence, measure, age_s, backups_target.rpo, "rpo")


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
    evidence.require("stanza_status", repository.status(), "==", "ok")
    latest = repository.latest()
    evidence.record("backup_id", latest["label"])
    evidence.expect("backup_error", latest["error"], "==", False)


@pytest.mark.p0
@pytest.mark.formats("pgbackrest")
def test_pgbackrest_latest_backup_within_rpo(backups_target, backups, evidence):
    latest = backups.pgbackrest().latest()
    evidence.require("latest_backup", latest["label"] if latest else "none", "!=", "none")
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
    evidence.require("latest_backup", latest["backup_id"] if latest else "none", "!=", "none")
    evidence.record("backup_id", latest["backup_id"])
    evidence.expect("backup_status", latest["status"], "==", "DONE")


@pytest.mark.p0
@pytest.mark.formats("barman")
def test_barman_latest_backup_within_rpo(backups_target, backups, evidence):
    done = backups.barman().latest_done()
    evidence.require("latest_done_backup", done["backup_id"] if done else "none", "!=", "none")
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


# --- Velero: Backup objects of a Kubernetes cluster, judged on the newest finished one ------------
def _velero_latest(backups, evidence) -> dict:
    """The newest finished Velero backup (fails ``latest_backup ('none') != 'none'`` when there is none)."""
    __tracebackhide__ = True
    velero = backups.velero()
    evidence.record("backups_found", len(velero.backups()))
    in_flight = velero.in_flight()
    if in_flight:  # judged when finished: a run overlapping the schedule must not fail on it
        evidence.record("in_flight", in_flight)
    latest = velero.latest()
    evidence.require("latest_backup", latest["metadata"]["name"] if latest else "none", "!=", "none")
    return latest


@pytest.mark.p0
@pytest.mark.formats("velero")
def test_velero_latest_backup_completed(backups_target, backups, evidence):
    """Completed, or (with ``errors`` above 0) PartiallyFailed for the errors check to judge the count."""
    latest = _velero_latest(backups, evidence)
    status = latest.get("status") or {}
    evidence.record("backup_id", latest["metadata"]["name"])
    for detail in ("failureReason", "validationErrors"):
        if status.get(detail):
            evidence.record(detail, status[detail])
    phase = status.get("phase")
    tolerated = phase == "PartiallyFailed" and backups_target.velero.errors > 0
    evidence.expect("backup_phase", phase, "==", "PartiallyFailed" if tolerated else "Completed")


@pytest.mark.p0
@pytest.mark.formats("velero")
def test_velero_latest_completed_backup_within_rpo(backups_target, backups, evidence):
    completed = backups.velero().latest_completed()
    evidence.require("latest_completed_backup", completed["metadata"]["name"] if completed else "none", "!=", "none")
    finished_at = parse_time(completed["status"].get("completionTimestamp"))
    evidence.record("completion_timestamp", completed["status"].get("completionTimestamp"))
    age_within_rpo(evidence, backups_target, "age", (datetime.now(timezone.utc) - finished_at).total_seconds())


@pytest.mark.p0
@pytest.mark.formats("velero")
def test_velero_latest_backup_errors_within_limit(backups_target, backups, evidence):
    status = _velero_latest(backups, evidence).get("status") or {}
    evidence.expect("errors", int(status.get("errors") or 0), "<=", backups_target.velero.errors)


@pytest.mark.p1
@pytest.mark.formats("velero")
def test_velero_latest_backup_warnings_within_limit(backups_target, backups, evidence):
    """Velero reports Completed with skipped volumes or items only in this count."""
    status = _velero_latest(backups, evidence).get("status") or {}
    evidence.expect("warnings", int(status.get("warnings") or 0), "<=", backups_target.velero.warnings)


@pytest.mark.p2
@pytest.mark.formats("velero")
def test_velero_latest_completed_backup_not_expired(backups_target, backups, evidence):
    """An expired backup still listed means Velero's garbage collection is stuck, or it is about to go."""
    completed = backups.velero().latest_completed()
    evidence.require("latest_completed_backup", completed["metadata"]["name"] if completed else "none", "!=", "none")
    expiration = parse_time(completed["status"].get("expiration"))
    if expiration is None:
        pytest.skip(f"{backups_target.where}: {completed['metadata']['name']} has no status.expiration (no TTL)")
    evidence.record("expiration", completed["status"]["expiration"])
    evidence.expect("expires_in_h", round((expiration - datetime.now(timezone.utc)).total_seconds() / 3600, 1),
                    ">", 0)


@pytest.mark.p1
@pytest.mark.formats("velero")
def test_velero_storage_location_available(backups_target, backups, evidence):
    settings = backups_target.velero
    if not settings.storage_location:
        pytest.skip(f"{backups_target.where} sets no velero.storage_location")
    location = backups.velero().storage_location()
    evidence.require("storage_location", settings.storage_location if location else "none", "!=", "none")
    status = location.get("status") or {}
    if status.get("message"):  # Velero's reason for Unavailable (NoSuchBucket, AccessDenied...)
        evidence.record("location_message", status["message"])
    evidence.expect("location_phase", status.get("phase", "none"), "==", "Available")
    validated = parse_time(status.get("lastValidationTime"))
    evidence.require("last_validation", status.get("lastValidationTime") or "none", "!=", "none")
    age_within(evidence, "validation_age", (datetime.now(timezone.utc) - validated).total_seconds(),
                settings.location_validation_max_age)


@pytest.mark.p1
@pytest.mark.formats("velero")
def test_velero_schedule_enabled_and_recent(backups_target, backups, evidence):
    settings = backups_target.velero
    if not settings.schedule:
        pytest.skip(f"{backups_target.where} sets no velero.schedule")
    schedule = backups.velero().schedule()
    evidence.require("schedule", settings.schedule if schedule else "none", "!=", "none")
    spec, status = schedule.get("spec") or {}, schedule.get("status") or {}
    evidence.record("cron", spec.get("schedule"))
    evidence.expect("paused", bool(spec.get("paused", False)), "==", False)
    evidence.expect("schedule_phase", status.get("phase", "none"), "==", "Enabled")
    last = parse_time(status.get("lastBackup"))
    evidence.require("last_backup", status.get("lastBackup") or "none", "!=", "none")
    age_within_rpo(evidence, backups_target, "last_backup_age", (datetime.now(timezone.utc) - last).total_seconds())


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
