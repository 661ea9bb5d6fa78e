"""Run folders and artifacts that are whole or absent: created atomically, written through a rename.

Two runs started in the same second both saw the folder free and wrote into one; a full disk left a
truncated results.json that history then hashed as intact. Now the folder is claimed by ``mkdir``
(which only one process can win), and each artifact is written beside its final name and renamed
over it, so a reader sees the old file, the new one, or none, never half of one. A write that fails
raises ``ArtifactError`` naming the file: the run prints that one line and exits with the error code.

>>> run_dir = create_run_dir(Path("reports/staging"), "20260101T000000Z-smoke")   # doctest: +SKIP
>>> write_atomic(run_dir / "results.json", text)                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path


PARTIAL = ".partial-"  # junit.xml and report.html are written as .partial-<name>, renamed once complete


def partial_path(run_dir: Path, name: str) -> str:
    """Where a reporter writes ``name`` (junitxml, pytest-html): renamed to ``name`` once it is whole."""
    return str(run_dir / f"{PARTIAL}{name}")


class ArtifactError(OSError):
    """An artifact could not be written: ``path`` and why (``strerror``)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(reason)
        self.strerror = reason
        self.path = path


def create_run_dir(parent: Path, name: str) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``... : whichever this process creates first is its own."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtifactError(parent, error.strerror or str(error)) from None
    attempt = 1
    while True:
        run_dir = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            attempt += 1
        except OSError as error:
            raise ArtifactError(run_dir, error.strerror or str(error)) from None


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        raise ArtifactError(path, error.strerror or str(error)) from None
    return path
