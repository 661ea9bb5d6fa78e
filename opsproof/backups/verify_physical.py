"""Physical base backups: ``pg_verifybackup`` checks a ``pg_basebackup`` directory against its manifest.

It re-reads every file (size and checksum from ``backup_manifest``) and, when the backup carries its
WAL (``-X stream``), parses the WAL needed to make it consistent: a copy that restores, not just exists.

>>> verify_base_backup(Path("/backups/base/20261123"))   # doctest: +SKIP
'ok'
"""

from __future__ import annotations

import shutil
from pathlib import Path

from opsproof.backups.formats import _run, first_error

PREFIX = "pg_verifybackup: error: "


def pg_verifybackup() -> str:
    """Debian keeps it in the versioned bindir, not on PATH."""
    found = shutil.which("pg_verifybackup")
    if found:
        return found
    from opsproof.postgres.binaries import bindir

    return str(bindir() / "pg_verifybackup")


def verify_base_backup(directory: Path, wal_included: bool = True, timeout_s: float = 1800) -> str:
    """``ok``, or pg_verifybackup's first error (``checksum mismatch for file "base/1/1255"``)."""
    args = [pg_verifybackup(), "--quiet"]
    if not wal_included:
        args.append("--no-parse-wal")
    result = _run([*args, str(directory)], timeout_s, "base backups")
    if result.returncode == 0:
        return "ok"
    return first_error(result.stderr).removeprefix(PREFIX) or f"pg_verifybackup exited {result.returncode}"
