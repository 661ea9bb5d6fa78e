"""Backups on another machine: a path glob on a host target, read over ssh without copying what a stream can judge.

Listing is one ``stat`` over the glob the host's shell expands; checksums, gzip tests and the closing
marker's tail run on the host (``sha256sum``, ``gzip -t``, ``gzip -dc | tail -c``), so only their answer
crosses the network; a custom dump and an archive stream through the ssh channel into the local reader
(``pg_restore``, tarfile); what needs a file (an RDB, a zip, the restore drill's dump) is fetched into a
directory the caller owns. The host needs ``sh``, GNU coreutils (``stat``, ``timeout``) and ``gzip``.

>>> location = SshLocation("/backups/db_*.sql.gz", host_target)   # doctest: +SKIP
>>> latest = location.files()[-1]; location.gzip_test(latest)       # doctest: +SKIP
'complete'
"""

from __future__ import annotations

import posixpath
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from opsproof.backups.location import BackupFile
from opsproof.environment.backups import SHELL_SAFE_GLOB as _GLOB_SAFE  # what the model lets through as a glob
from opsproof.errors import ProbeError
from opsproof.ssh import SshChannel

TAIL_BYTES = 64 * 1024
_STAT = "stat -L --printf '%Y %s %n\\0'"  # modification time, size, path; NUL-separated: names may hold anything


def _listed(output: bytes) -> list[BackupFile]:
    found = []
    for entry in output.split(b"\0"):
        if entry:
            modified, size, path = entry.decode(errors="surrogateescape").split(" ", 2)
            found.append(BackupFile(posixpath.basename(path), path, int(size),
                                    datetime.fromtimestamp(int(modified), timezone.utc)))
    return found


def shell_glob(path: str) -> str:
    """``path`` for the host's shell: as written when it is a safe glob, else quoted (a literal name)."""
    return path if _GLOB_SAFE.match(path) else shlex.quote(path)


class SshLocation:
    """A glob of files on a host target; files sorted oldest first by modification time."""

    def __init__(self, pattern: str, host, read_timeout_s: float = 600.0):
        self.pattern, self.host = pattern, host
        self.directory = posixpath.dirname(pattern)
        self.read_timeout_s = read_timeout_s
        self.channel = SshChannel.of(host)

    def files(self, pattern: str | None = None) -> list[BackupFile]:
        # a file pruned between the glob and its stat is skipped, as locally; a stat that fails otherwise is
        # an error (a host without GNU stat must not read as a missing backup)
        listing = (f"for f in {shell_glob(pattern or self.pattern)}; do [ -f \"$f\" ] || continue; "
                   f"{_STAT} -- \"$f\" || [ ! -e \"$f\" ] || exit 3; done")
        return sorted(_listed(self.channel.run(listing).stdout), key=lambda f: (f.modified_at, f.name))

    def beside(self, name: str) -> BackupFile | None:
        """A file in the backups' directory (a manifest, a sidecar), or None."""
        if _GLOB_SAFE.match(name):
            matches = self.files(posixpath.join(self.directory, name))
        else:  # a name from the host's own listing: quoted, so its shell takes it as it is
            quoted = f"{shell_glob(self.directory)}/{shlex.quote(name)}"
            matches = _listed(self.channel.run(f"if [ -f {quoted} ]; then {_STAT} -- {quoted}; fi").stdout)
        return matches[-1] if matches else None

    def _path(self, backup: BackupFile) -> str:
        return shlex.quote(backup.ref)

    # --- small reads, under the host's timeout --------------------------------------------------
    def read_bytes(self, backup: BackupFile) -> bytes:
        return self.channel.run(f"cat -- {self._path(backup)}").stdout

    # --- content, judged on the host --------------------------------------------------------------
    def sha256(self, backup: BackupFile) -> str:
        answer = self.channel.run(f"sha256sum -b < {self._path(backup)}", self.read_timeout_s).stdout
        return answer.split(b" ", 1)[0].decode().lower()  # read on stdin: no file name to escape in the answer

    def gzip_test(self, backup: BackupFile) -> str:
        """``complete``, ``truncated`` or ``corrupt (what gzip said)``, as the local check words it."""
        result = self.channel.run(f"gzip -t -- {self._path(backup)}", self.read_timeout_s, ok=(0, 1, 2))
        if result.returncode == 0:
            return "complete"
        said = [line.rsplit(": ", 1)[-1] for line in result.stderr.decode(errors="replace").splitlines() if line]
        if not said:
            self.channel.fail("gzip -t", result.returncode, result.stderr, self.read_timeout_s)
        return "truncated" if "unexpected end of file" in said else f"corrupt ({said[0]})"

    def tail(self, backup: BackupFile, gzipped: bool) -> bytes:
        """The last 64 KiB of the file, or of its decompressed stream (what could be decompressed of it)."""
        path = self._path(backup)
        command = (f"gzip -dc -- {path} 2>/dev/null | tail -c {TAIL_BYTES}" if gzipped
                   else f"tail -c {TAIL_BYTES} -- {path}")
        return self.channel.run(command, self.read_timeout_s).stdout

    # --- content, streamed here -------------------------------------------------------------------
    def open(self, backup: BackupFile):
        """A Stream of the file's bytes (``stream.stdout``); ``stream.finish(stopped_early)`` when read."""
        return self.channel.stream(f"cat -- {self._path(backup)}", self.read_timeout_s)

    def piped(self, backup: BackupFile, args: list[str]) -> subprocess.CompletedProcess:
        """A local tool reading the file on its stdin, straight from the ssh channel (``pg_restore -f /dev/null``)."""
        with self.open(backup) as stream:
            try:
                tool = subprocess.Popen(args, stdin=stream.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise ProbeError(f"{args[0]} not found: install it to verify {backup.name}") from None
            stream.stdout.close()  # the tool holds the read end now: ssh sees it close when the tool stops
            try:
                _, stderr = tool.communicate(timeout=self.channel.deadline_s(self.read_timeout_s))
            except subprocess.TimeoutExpired:
                tool.kill()
                tool.wait()
                raise ProbeError(f"{args[0]} did not finish within {self.read_timeout_s:g} s") from None
            stream.finish(stopped_early=tool.returncode != 0)
        return subprocess.CompletedProcess(args, tool.returncode, "", stderr.decode(errors="replace"))

    def fetch(self, backup: BackupFile, into: Path) -> Path:
        """A copy in ``into`` (a directory the caller owns and removes), streamed over the channel."""
        into.mkdir(parents=True, exist_ok=True)
        target = into / backup.name
        try:
            with open(target, "wb") as handle, self.channel.stream(
                    f"cat -- {self._path(backup)}", self.read_timeout_s, stdout=handle) as stream:
                stream.finish()
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    def describe(self) -> str:
        return f"{self.host.where}:{self.pattern}"

    def close(self) -> None:
        self.channel.release()

