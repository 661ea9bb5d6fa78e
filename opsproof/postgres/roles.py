"""What a PostgreSQL monitoring role holds that acts outside a read-only transaction.

``rolsuper`` first: for a superuser ``pg_has_role`` is true for every role. Then the REPLICATION
attribute (creates and drops replication slots, observed inside ``BEGIN READ ONLY``), the predefined
roles that write server files, run server programs or signal other roles' sessions, and EXECUTE
granted on functions that are superuser-only by default and change the server.

Without any privilege a role may still cancel or terminate sessions of a role whose privileges it
has (its own, or one it inherits): those are counted, other opsproof sessions aside.
"""

from __future__ import annotations

from opsproof.monitoring_role import MonitoringRole

PREDEFINED = ("pg_execute_server_program", "pg_write_server_files", "pg_signal_backend")

# Superuser-only by default (REVOKE ... FROM PUBLIC); absent ones (other versions, adminpack) are skipped.
FUNCTIONS = (
    "pg_reload_conf()", "pg_switch_wal()", "pg_create_restore_point(text)", "pg_promote(boolean,integer)",
    "pg_rotate_logfile()", "pg_wal_replay_pause()", "pg_wal_replay_resume()",
    "pg_stat_reset()", "pg_stat_reset_shared(text)", "pg_stat_reset_single_table_counters(oid)",
    "pg_stat_reset_slru(text)", "pg_stat_reset_replication_slot(text)",
    "pg_backup_start(text,boolean)", "pg_start_backup(text,boolean,boolean)",
    "lo_import(text)", "lo_import(text,oid)", "lo_export(oid,text)",
    "pg_file_write(text,text,boolean)", "pg_file_rename(text,text,text)", "pg_file_unlink(text)",
)

ROLE_SQL = f"""
SELECT current_user::text, r.rolsuper, r.rolreplication,
  ARRAY(SELECT p.rolname::text FROM pg_roles p
        WHERE p.rolname IN ({", ".join(f"'{name}'" for name in PREDEFINED)})
          AND pg_has_role(current_user, p.oid, 'USAGE') ORDER BY 1),
  ARRAY(SELECT 'EXECUTE ' || f.signature FROM unnest(ARRAY[{", ".join(f"'{f}'" for f in FUNCTIONS)}]) f(signature)
        WHERE has_function_privilege(to_regprocedure(f.signature), 'EXECUTE') ORDER BY 1),
  (SELECT count(*) FROM pg_stat_activity a
   WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND a.application_name <> 'opsproof'
     AND a.usesysid IS NOT NULL AND pg_has_role(current_user, a.usesysid, 'USAGE'))
FROM pg_roles r WHERE r.rolname = current_user
"""


def role_of(rows: list[tuple]) -> MonitoringRole:
    """The role ``ROLE_SQL`` describes."""
    name, superuser, replication, predefined, functions, signalable = rows[0]
    if superuser:
        holds = ["superuser"]
    else:
        holds = (["replication"] if replication else []) + list(predefined) + list(functions)
    return MonitoringRole(name, tuple(holds), signalable)
