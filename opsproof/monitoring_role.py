"""What a database monitoring role can do beyond reading, which no read-only session can take away.

A read-only transaction blocks writes to tables, not what privileges do outside it: a superuser's
``COPY ... TO PROGRAM``, ``pg_reload_conf()``, a replication slot, MySQL's ``SELECT ... INTO OUTFILE``
or ``KILL``. Each probe reads its role once per connection; production tiers refuse a role that holds
any of these, other tiers show it as a warning.

>>> MonitoringRole("monitor", holds=("superuser",)).refusal()
"refused on tier production: monitoring role 'monitor' holds superuser, which acts outside a read-only transaction"
>>> MonitoringRole("monitor").refusal() is None
True
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonitoringRole:
    name: str
    holds: tuple[str, ...] = ()  # privileges that act outside a read-only transaction
    signalable_sessions: int = 0  # other client sessions this role may cancel or kill without any privilege

    def refusal(self) -> str | None:
        """Why a production-tier session must not run with this role; None when it may."""
        if not self.holds:
            return None
        verb = "acts" if len(self.holds) == 1 else "act"
        return (f"refused on tier production: monitoring role {self.name!r} holds {', '.join(self.holds)}, "
                f"which {verb} outside a read-only transaction")
