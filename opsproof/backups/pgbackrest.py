"""pgBackRest repositories: ``pgbackrest info --output=json`` and, where configured, ``verify``.

>>> PgBackRest("main", "/etc/pgbackrest/pgbackrest.conf").latest()   # doctest: +SKIP
{'label': '20261123-020001F', 'type': 'full', 'stopped_at': datetime(...), 'error': False, 'size_bytes': 31000000}
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

from opsproof.backups.formats import first_error
from opsproof.errors import ProbeError


class PgBackRest:
    def __init__(self, stanza: str, config: str | None = None, timeout_s: float = 120.0):
        self.stanza, self.config, self.timeout_s = stanza, config, timeout_s
        self._info: dict | None = None

    @classmethod
    def of(cls, settings) -> "PgBackRest":
        """The repository a backup set's ``pgbackrest:`` section names."""
        return cls(settings.stanza, settings.config, settings.timeout_s)

    def command(self, *command: str, log_level: str = "warn") -> list[str]:
        """The pgbackrest command line for this stanza (and its config file)."""
        args = ["pgbackrest", f"--stanza={self.stanza}", f"--log-level-console={log_level}"]
        if self.config:
            args.append(f"--config={self.config}")
        return [*args, *command]

    def _run(self, *command: str, log_level: str = "warn") -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.command(*command, log_level=log_level), capture_output=True, text=True,
                                  timeout=self.timeout_s)
        except FileNotFoundError:
            raise ProbeError("pgbackrest not found: install the Debian package pgbackrest") from None
        except subprocess.TimeoutExpired:
            raise ProbeError(f"pgbackrest {command[0]} did not finish within {self.timeout_s:g} s") from None

    def _json(self, *command: str):
        """A pgbackrest command's ``--output=json`` answer; ProbeError with its first error line."""
        result = self._run(*command, "--output=json")
        if result.returncode != 0:
            raise ProbeError(f"pgbackrest {' '.join(command)}: {first_error(result.stderr or result.stdout)}")
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise ProbeError(f"pgbackrest {command[0]} did not return JSON") from None

    def info(self) -> dict:
        """The stanza's entry of ``pgbackrest info --output=json`` (read once: status, latest backup and
        the archive all come from it)."""
        if self._info is None:
            self._info = next((s for s in self._json("info") if s.get("name") == self.stanza), None)
            if self._info is None:
                raise ProbeError(f"pgbackrest info does not list stanza {self.stanza}")
        return self._info

    def repo_ls(self, path: str) -> dict:
        """``repo-ls --recurse`` of a repository path: any repository type (posix, S3, Azure...)."""
        return self._json("repo-ls", "--recurse", path)

    def repo_get(self, path: str) -> str:
        result = self._run("repo-get", path)
        if result.returncode != 0:
            raise ProbeError(f"pgbackrest repo-get {path}: {first_error(result.stderr or result.stdout)}")
        return result.stdout

    def status(self) -> str:
        """``ok`` or pgBackRest's status message (``missing stanza path``, ``no valid backups``...)."""
        status = self.info().get("status", {})
        return "ok" if status.get("code") == 0 else status.get("message", f"code {status.get('code')}")

    def latest(self) -> dict | None:
        backups = self.info().get("backup", [])
        if not backups:
            return None
        last = backups[-1]
        return {
            "label": last.get("label"),
            "type": last.get("type"),
            "stopped_at": datetime.fromtimestamp(last["timestamp"]["stop"], timezone.utc),
            "error": bool(last.get("error", False)),
            "size_bytes": last.get("info", {}).get("repository", {}).get("delta"),
            "wal_start": last.get("archive", {}).get("start"),
            "wal_stop": last.get("archive", {}).get("stop"),
        }

    def archive_max_wal(self) -> str | None:
        archives = self.info().get("archive", [])
        return archives[-1].get("max") if archives else None

    def verify(self) -> str:
        """``ok``, or the first problem ``pgbackrest verify`` finds (checksums of every file and WAL segment).

        verify exits 0 even when files are invalid: the verdict is the ``status: error`` in its summary.
        """
        result = self._run("verify", log_level="info")
        output = result.stdout + result.stderr
        if result.returncode == 0 and "status: error" not in output:
            return "ok"
        problems = [line.split("INFO: ", 1)[-1].strip() for line in output.splitlines()
                    if "INFO: " in line and any(word in line for word in ("invalid", "missing", "error"))]
        return (problems[0] if problems else first_error(output)) or f"pgbackrest verify exited {result.returncode}"
