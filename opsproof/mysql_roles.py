"""What a MySQL / MariaDB monitoring account holds that acts outside a read-only transaction.

Read from ``SHOW GRANTS``, which in MariaDB also lists the grants of the account's enabled roles
(MySQL 8 names the roles only; their privileges need ``SHOW GRANTS ... USING``, not read here).

>>> role_of([{"Grants for m@%": "GRANT PROCESS, FILE ON *.* TO `m`@`%`"},
...          {"Grants for m@%": "GRANT EXECUTE ON `app`.* TO `m`@`%`"}], 0).holds
('FILE', 'EXECUTE ON `app`.*')
"""

from __future__ import annotations

import re

from opsproof.monitoring_role import MonitoringRole

# Global privileges that act outside a transaction: SUPER and FILE (INTO OUTFILE ran inside a read-only
# one), server and replication control, killing other accounts' sessions, bypassing read_only.
# MariaDB 10.5+ names and MySQL 8 dynamic-privilege names.
ADMIN = {
    "ALL PRIVILEGES", "SUPER", "FILE", "SHUTDOWN", "RELOAD", "CONNECTION ADMIN", "BINLOG ADMIN", "BINLOG REPLAY",
    "REPLICATION SLAVE ADMIN", "REPLICATION MASTER ADMIN", "READ_ONLY ADMIN", "SET USER", "FEDERATED ADMIN",
    "CONNECTION_ADMIN", "BINLOG_ADMIN", "REPLICATION_SLAVE_ADMIN", "SYSTEM_VARIABLES_ADMIN", "SESSION_VARIABLES_ADMIN",
    "GROUP_REPLICATION_ADMIN", "PERSIST_RO_VARIABLES_ADMIN", "SYSTEM_USER", "CLONE_ADMIN",
}
# Anywhere: a stored procedure runs with its definer's rights and may COMMIT and set the session
# read-write before it writes (observed: it then writes despite both read-only settings).
ROUTINES = {"ALL PRIVILEGES", "EXECUTE"}

_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<on>.+?) TO ", re.IGNORECASE)

# Sessions of the same account, which it may KILL without any privilege (all of them with CONNECTION ADMIN).
SESSIONS_SQL = ("SELECT COUNT(*) AS sessions FROM information_schema.PROCESSLIST"
                " WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AND ID <> CONNECTION_ID()")


def role_of(grants: list[dict], signalable_sessions: int) -> MonitoringRole:
    """The account ``SHOW GRANTS`` (rows as dicts) describes; its name from the first row's heading."""
    heading = next(iter(grants[0])) if grants else "Grants for ?"
    holds: list[str] = []
    for row in grants:
        match = _GRANT.match(next(iter(row.values())))
        if not match:  # GRANT `role` TO ..., SET DEFAULT ROLE ...
            continue
        on = match["on"]
        for privilege in _privileges(match["privileges"]):
            if on == "*.*" and privilege in ADMIN:
                holds.append(privilege)
            elif privilege in ROUTINES:
                holds.append(f"{privilege} ON {on}")
    return MonitoringRole(heading.removeprefix("Grants for "), tuple(dict.fromkeys(holds)), signalable_sessions)


def _privileges(text: str) -> list[str]:
    """``SELECT (a, b), INSERT`` -> ``['SELECT', 'INSERT']``."""
    return [p.strip().upper() for p in re.sub(r"\([^)]*\)", "", text).split(",")]
