"""Is a backup file whole? gzip streams read to the end, closing markers, full reads of custom dumps.

``gzip -t`` alone misses ``pg_dump | gzip`` without pipefail (a valid gzip of a partial dump), and
``pg_restore --list`` reads only the table of contents; so every data block is read here.

>>> gzip_stream("db.sql.gz"), closing_marker("db.sql.gz", "pg_plain_gz")   # doctest: +SKIP
('complete', 'present')
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import zlib
from pathlib import Path

from opsproof.errors import ProbeError

MARKERS = {
    "pg_plain": b"-- PostgreSQL database dump complete",
    "pg_plain_gz": b"-- PostgreSQL database dump complete",
    "mysqldump_gz": b"-- Dump completed",
}
GZIPPED = ("pg_plain_gz", "mysqldump_gz")
_CHUNK = 1 << 20
_TAIL = 64 * 1024  # recent pg_dump adds a \unrestrict line after the marker: search the tail, not the last line


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_manifest(text: str) -> dict[str, str]:
    """``sha256sum`` output (``<hex>  <name>``, ``*`` for binary mode) -> {file name: hex}."""
    entries = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            entries[parts[1].lstrip("*").rsplit("/", 1)[-1]] = parts[0].lower()
    return entries


def _stream(path: Path, gzipped: bool):
    """The file's (decompressed) bytes in chunks; a broken gzip stream raises from the generator."""
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as handle:
        yield from iter(lambda: handle.read(_CHUNK), b"")


def gzip_stream(path: Path) -> str:
    """``complete``, or what is wrong with the stream (read to its end, as ``gzip -t`` does)."""
    try:
        for _ in _stream(path, True):
            pass
    except EOFError:
        return "truncated"
    except (OSError, zlib.error) as exc:
        return f"corrupt ({exc})"
    return "complete"


def closing_marker(path: Path, format: str) -> str:
    """``present`` when the dump's closing marker is in its last 64 KiB, else ``missing``."""
    tail = b""
    try:
        for chunk in _stream(path, format in GZIPPED):
            tail = (tail + chunk)[-_TAIL:]
    except (EOFError, OSError, zlib.error):
        pass  # a broken stream is judged by gzip_stream; here only the text that could be read counts
    return marker_in(tail, format)


def marker_in(tail: bytes, format: str) -> str:
    """``present`` when the last 64 KiB of a dump hold its closing marker, else ``missing``."""
    return "present" if MARKERS[format] in tail[-_TAIL:] else "missing"


def _run(args: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise ProbeError(f"{args[0]} not found: install it to verify {what}") from None
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{args[0]} did not finish within {timeout_s:g} s") from None


def first_error(text: str) -> str:
    """The first line that says what went wrong (tools print context lines around it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fatal" in line.lower() or "invalid" in line.lower():
            return line
    return lines[0] if lines else ""


def custom_dump_read(path: Path, timeout_s: float = 600) -> str:
    """``readable``, or pg_restore's first error after reading every data block to /dev/null."""
    return read_verdict(_run(["pg_restore", "-f", "/dev/null", str(path)], timeout_s, "custom-format dumps"))


def read_verdict(result: subprocess.CompletedProcess) -> str:
    """``readable``, or the first error of ``pg_restore -f /dev/null`` (given a file, or the dump on stdin)."""
    if result.returncode == 0:
        return "readable"
    return first_error(result.stderr) or f"pg_restore exited {result.returncode}"


def rdb_check(path: Path, timeout_s: float = 300) -> str:
    """``ok``, or redis-check-rdb's complaint."""
    result = _run(["redis-check-rdb", str(path)], timeout_s, "Redis RDB files")
    if result.returncode == 0 and "RDB looks OK" in result.stdout:
        return "ok"
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "RDB ERROR DETECTED" in line:
            detail = lines[index + 1] if index + 1 < len(lines) else line
            return detail.split("] ", 1)[-1]
    return first_error("\n".join(lines)) or f"redis-check-rdb exited {result.returncode}"
