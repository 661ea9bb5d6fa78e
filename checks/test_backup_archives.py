"""File-storage and secrets backups (format files): the latest archive reads to its end and holds as much as lately."""

import pytest

pytestmark = [pytest.mark.nightly, pytest.mark.backup]


@pytest.mark.p0
@pytest.mark.formats("files")
def test_latest_archive_reads_to_its_end(backups_target, backups, evidence):
    latest = backups.require_latest()
    found = backups.archive(latest)
    evidence.record("backup_id", latest.name)
    evidence.record("archive_kind", found.kind)
    evidence.expect("archive_read", found.verdict, "==", "complete")


@pytest.mark.p1
@pytest.mark.formats("files")
def test_latest_archive_members_within_history(backups_target, backups, evidence):
    found = backups.archive(backups.require_latest())
    if found.verdict != "complete":  # its count stops where the read stopped: the read check fails it
        pytest.skip(f"{backups_target.where}: the latest archive did not read to its end ({found.verdict})")
    floors = backups.archive_floors()
    if floors is None:
        pytest.skip(f"{backups_target.where} has no earlier whole archive to compare with")
    previous = backups.previous_archives()
    evidence.record("previous_member_counts", [p.members for p in previous])
    evidence.expect("member_count", found.members, ">=", floors[0])
    evidence.record("previous_member_bytes", [p.total_bytes for p in previous])
    evidence.expect("member_bytes", found.total_bytes, ">=", floors[1])
