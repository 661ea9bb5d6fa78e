"""Barman catalogues: ``barman -f json list-backups`` and ``barman -f json check``, read-only.

>>> Barman("pg", "/etc/barman.conf").latest()     # doctest: +SKIP
{'backup_id': '20261123T020001', 'status': 'DONE', 'ended_at': datetime(...), 'size_bytes': 40129564}
>>> Barman("pg", "/etc/barman.conf").check()      # doctest: +SKIP
'failed backups: FAILED (there are 1 failed backups)'
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

from opsproof.backups.formats import first_error
from opsproof.errors import ProbeError


class Barman:
    def __init__(self, server: str, config: str | None = None, timeout_s: float = 120.0):
        self.server, self.config, self.timeout_s = server, config, timeout_s
        self._backups: list[dict] | None = None

    def _json(self, command: str) -> dict:
        """The server's entry of ``barman -f json <command> <server>``; Barman's own error as ProbeError."""
        args = ["barman", *(["-c", self.config] if self.config else []), "-f", "json", command, self.server]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise ProbeError("barman not found: install the Debian package barman") from None
        except subprocess.TimeoutExpired:
            raise ProbeError(f"barman {command} did not finish within {self.timeout_s:g} s") from None
        try:
            output = json.loads(result.stdout)
        except ValueError:
            raise ProbeError(f"barman {command}: {first_error(result.stderr or result.stdout)}") from None
        if self.server not in output:
            errors = output.get("_ERROR") or [first_error(result.stderr) or f"exit {result.returncode}"]
            raise ProbeError(f"barman {command}: {errors[0]}")
        return output[self.server]

    def backups(self) -> list[dict]:
        """The catalogue, oldest first (Barman lists newest first; ids are timestamps)."""
        if self._backups is None:
            listed = sorted(self._json("list-backups"), key=lambda b: b["backup_id"])
            self._backups = [{
                "backup_id": b["backup_id"],
                "status": b.get("status", "UNKNOWN"),
                "ended_at": (datetime.fromtimestamp(int(b["end_time_timestamp"]), timezone.utc)
                             if b.get("end_time_timestamp") else None),
                "size_bytes": b.get("size_bytes"),
            } for b in listed]
        return self._backups

    def latest(self) -> dict | None:
        """The newest backup whatever its status (FAILED, WAITING_FOR_WALS, STARTED...)."""
        backups = self.backups()
        return backups[-1] if backups else None

    def latest_done(self) -> dict | None:
        """The newest backup that is restorable: its end time is the achieved recovery point."""
        done = [b for b in self.backups() if b["status"] == "DONE"]
        return done[-1] if done else None

    def check(self) -> str:
        """``ok``, or the first failing ``barman check`` line (``receive-wal running: FAILED (...)``)."""
        failed = [(name, result) for name, result in self._json("check").items()
                  if str(result.get("status", "")).upper() != "OK"]
        if not failed:
            return "ok"
        name, result = failed[0]
        hint = f" ({result['hint']})" if result.get("hint") else ""
        return f"{name.replace('_', ' ')}: {result.get('status')}{hint}"
