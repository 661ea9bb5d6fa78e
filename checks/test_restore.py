"""The monthly restore drill: the latest backup restores strictly into a scratch database (logical dumps)
or a scratch data directory started as a throwaway server (pgBackRest, pg_basebackup), and verifies."""

import pytest

pytestmark = [pytest.mark.backup, pytest.mark.destructive]


@pytest.mark.p1
@pytest.mark.formats("pg_custom", "pg_plain", "pg_plain_gz", "mysqldump_gz", "pgbackrest", "pg_basebackup")
def test_latest_backup_restores_and_verifies_within_rto(backups_target, backups, restore_into, evidence):
    record = backups.drill(on_record=evidence.drill)
    for verification in record.verifications:
        evidence.expect(verification.measure, verification.value, verification.op, verification.limit)
    evidence.expect("cleanup_confirmed", record.cleanup_confirmed, "==", True)
