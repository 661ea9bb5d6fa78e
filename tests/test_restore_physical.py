import pytest
from test_backup_model import load
from opsproof.errors import ConfigError

BASEBACKUP = "{of: postgres.main, format: pg_basebackup, location: /b/base-*, rpo: 24h, rto: 1h, "
PGBACKREST = "{of: postgres.main, format: pgbackrest, pgbackrest: {stanza: main}, rpo: 24h, rto: 1h, "
CUSTOM = "{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, "


@pytest.mark.parametrize("spec, key_path, problem", [
    (BASEBACKUP + "restore_into: {scratch: true}}", "backups.db.restore_into",
     "give exactly one of dsn (a scratch database, for logical dumps) or data_dir (a scratch data directory, "
     "for pgbackrest and pg_basebackup)"),
    (PGBACKREST + "restore_into: {dsn: 'postgresql://x@h/d', data_dir: /var/tmp/drill, scratch: true}}",
     "backups.db.restore_into", "give exactly one of dsn (a scratch database, for logical dumps) or data_dir "
     "(a scratch data directory, for pgbackrest and pg_basebackup)"),
    (CUSTOM + "restore_into: {data_dir: /var/tmp/drill, scratch: true}}", "backups.db",
     "restore_into.data_dir: format pg_custom restores into a scratch database (restore_into.dsn), "
     "not a data directory"),
    (PGBACKREST + "restore_into: {dsn: 'postgresql://x@h/d', scratch: true}}", "backups.db",
     "restore_into.dsn: format pgbackrest restores into a scratch data directory (restore_into.data_dir), "
     "not a database"),
    (BASEBACKUP + "restore_into: {data_dir: var/tmp/drill, scratch: true}}", "backups.db.restore_into.data_dir",
     "String should match pattern '^/'"),
])
def test_wrong_physical_restore_targets_are_rejected_with_the_key_path(tmp_path, spec, key_path, problem):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {spec}\n")
    assert (error.value.key_path, error.value.problem) == (key_path, problem)


def test_physical_restore_targets_load_and_two_sets_may_not_share_a_data_dir(tmp_path):
    loaded = load(tmp_path, f"  db: {PGBACKREST}restore_into: {{data_dir: /var/tmp/drill/db, scratch: true}}}}\n"
                            f"  base: {BASEBACKUP}restore_into: {{data_dir: /var/tmp/drill/base, scratch: true}}}}\n")
    assert loaded.environment.backups["db"].restore_into.data_dir == "/var/tmp/drill/db"
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {PGBACKREST}restore_into: {{data_dir: /var/tmp/drill, scratch: true}}}}\n"
                       f"  base: {BASEBACKUP}restore_into: {{data_dir: /var/tmp/drill/, scratch: true}}}}\n")
    assert error.value.problem == "backups.base.restore_into: the same scratch data directory as backups.db"
