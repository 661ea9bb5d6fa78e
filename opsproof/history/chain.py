"""The chain: one JSON line per record, each carrying the hash of the one before it.

Appending is the only write. A record's ``hash`` is the sha256 of its canonical JSON without ``hash``
and ``signature``; its ``prev_hash`` is the previous record's ``hash``, so editing, removing, inserting
or reordering a line breaks the chain at a line ``verify`` names. With a signing key each record also
carries ``signed_by``, ``public_key`` and an Ed25519 ``signature`` of its hash (``signing``).

A line is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced, under a file lock, so a
crash or a full disk can tear only the last line. The next append finds such a torn line, sets it aside
to ``history.jsonl.torn-<time>`` and records that (a ``torn`` record), then chains on from the last
valid record.

>>> append(path, record_for_run(run_dir, path, root), signer)   # the controller, once per run
>>> verify(path).problems                                        # [] when intact
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from opsproof.history.folders import unrecorded_folders
from opsproof.history.record import now_utc, operator

HISTORY_FILE = "history.jsonl"
GENESIS = "0" * 64
UNHASHED = ("hash", "signature")  # the signature signs the hash, so neither is part of it
TORN = object()


class HistoryError(Exception):
    """The history could not be written; the message names the file and why."""


def history_path(reports_base: Path, env_name: str, history_dir: str | None, env_file: Path | None) -> Path:
    """``<reports>/<env>/history.jsonl``, or ``<history_dir>/history.jsonl`` (relative to the environment file)."""
    if history_dir:
        directory = Path(history_dir)
        if not directory.is_absolute() and env_file is not None:
            directory = env_file.parent / directory
        return directory / HISTORY_FILE
    return reports_base / env_name / HISTORY_FILE


def record_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k not in UNHASHED}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(record: dict, signer=None) -> dict:
    """Set ``hash`` (and with a signer ``signed_by``, ``public_key``, ``signature``) on a chained record."""
    record = {k: v for k, v in record.items() if k not in (*UNHASHED, "signed_by", "public_key")}
    if signer is not None:
        record.update(signed_by=signer.fingerprint, public_key=signer.public_key)
    record["hash"] = record_hash(record)
    if signer is not None:
        record["signature"] = signer.sign(record["hash"])
    return record


def chained(record: dict, last: dict | None, signer=None) -> dict:
    """``record`` as the next link after ``last``: its ``seq``, ``prev_hash``, hash and signature."""
    seq = last["seq"] + 1 if last else 1
    return seal({"seq": seq, **record, "prev_hash": last["hash"] if last else GENESIS}, signer)


def loads(line: bytes | str):
    """The JSON value of a line, or ``TORN`` when it is not JSON (cut short, NUL bytes, not UTF-8)."""
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return TORN


def parse(line: bytes | str) -> dict | None:
    """A line as a record that can be chained on (a JSON object with an integer ``seq`` and text ``hash``)."""
    record = loads(line)
    if not isinstance(record, dict) or type(record.get("seq")) is not int or not isinstance(record.get("hash"), str):
        return None
    return record


def lines(path: Path) -> list[tuple[int, bytes]]:
    """(line number, bytes) for every line of the file, the last one also when its newline is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    pieces = data.split(b"\n")
    return list(enumerate(pieces if pieces[-1] else pieces[:-1], 1))


def read(path: Path) -> list[dict]:
    """Every record that parses (for reading; ``verify`` is what judges the chain)."""
    return [record for _, line in lines(path) if (record := parse(line)) is not None]


def append(path: Path, record: dict, signer=None, runs_dir: Path | None = None) -> list[dict]:
    """Chain ``record`` after the last valid one and append it, under a lock so concurrent runs do not
    interleave; a torn last line is set aside first (with a ``torn`` record). Returns what was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=60):
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                if created:
                    _fsync_directory(path.parent)
                written = []
                last, torn = _tail(fd)
                if torn is not None:
                    note = _set_aside(path, fd, torn, record, runs_dir)
                    written.append(last := _write(fd, chained(note, last, signer)))
                written.append(_write(fd, chained(record, last, signer)))
                return written
            finally:
                os.close(fd)
    except Timeout:
        raise HistoryError(f"{path}: another process has held {path.name}.lock for 60 s") from None
    except OSError as error:
        raise HistoryError(f"{path}: cannot append the history record: {error.strerror or error}") from None


def _tail(fd: int) -> tuple[dict | None, tuple[int, bytes] | None]:
    """The last valid record, and the torn last line as (offset, bytes) when there is one.

    Torn: a last line that is not JSON (a crash, a full disk, a tail of NUL bytes). A last line that is
    JSON but lacks its newline gets it. A JSON line with a wrong hash or wrong types is not torn: that is
    tampering, and stays for ``verify`` to name; the chain goes on from the last record it can chain on.
    """
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    pieces = data.split(b"\n")
    complete, partial = pieces[:-1], pieces[-1]
    last_piece = partial if partial else (complete[-1] if complete else None)
    if last_piece is None:
        return None, None
    before = complete if partial else complete[:-1]
    if loads(last_piece) is not TORN:
        if partial:
            os.write(fd, b"\n")
        before = [*before, last_piece]
        return next((r for line in reversed(before) if (r := parse(line)) is not None), None), None
    offset = size - len(partial) if partial else size - len(complete[-1]) - 1
    last = next((r for line in reversed(before) if (r := parse(line)) is not None), None)
    return last, (offset, data[offset:])


def _set_aside(path: Path, fd: int, torn: tuple[int, bytes], record: dict, runs_dir: Path | None) -> dict:
    """Move the torn bytes to a side file, cut them from the history, and say so in a ``torn`` record."""
    offset, data = torn
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    side, attempt = path.with_name(f"{path.name}.torn-{stamp}"), 1
    while side.exists():
        attempt += 1
        side = path.with_name(f"{path.name}.torn-{stamp}-{attempt}")
    with open(side, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.ftruncate(fd, offset)
    os.fsync(fd)
    cited = {(path.parent / a["path"]).parent.resolve() for a in record.get("artifacts", [])}
    return {"type": "torn", "recorded_at": now_utc(), "operator": operator(), "host": platform.node(),
            "set_aside": side.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "unrecorded": [name for name, folder in unrecorded_folders(path, read(path), runs_dir)
                           if folder.resolve() not in cited]}


def _write(fd: int, record: dict) -> dict:
    """One ``write`` of the whole line, fsynced; a short or failed write is cut back off, never left torn."""
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    start = os.fstat(fd).st_size
    try:
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, "No space left on device (short write)")
        os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise
    return record


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
