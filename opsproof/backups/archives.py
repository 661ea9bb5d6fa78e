"""Is a file-storage or secrets archive whole? tar (plain, gzip, bzip2, xz) and zip, read to their end.

A tar stream is decompressed by the standard library's gzip/bz2/lzma readers (which check the
trailer's CRC and length, as ``gzip -t`` does; tarfile's own stream mode does not) and every member
read to its end; tarfile ends quietly at a missing or damaged end-of-archive block, so that block is
checked here: a tar cut at a member boundary is truncated, not whole. A zip's members are each read
and their CRC-32 checked. Member count and total size are the regular files and their bytes.

>>> with open("uploads-20261123.tar.gz", "rb") as raw:   # doctest: +SKIP
...     scan(raw)
ArchiveScan(verdict='complete', kind='tar.gz', members=1834, total_bytes=734003200)
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from opsproof.errors import ProbeError

_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_WINDOW = 4 * tarfile.RECORDSIZE  # more than tarfile reads ahead of the block it parses
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_COMPRESSED = ((b"\x1f\x8b", "tar.gz", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
               (b"BZh", "tar.bz2", lambda raw: bz2.BZ2File(raw, "rb")),
               (b"\xfd7zXZ\x00", "tar.xz", lambda raw: lzma.LZMAFile(raw, "rb")))


@dataclass(frozen=True)
class ArchiveScan:
    verdict: str  # complete | truncated (...) | corrupt (...)
    kind: str  # tar, tar.gz, tar.bz2, tar.xz, zip
    members: int  # regular files
    total_bytes: int  # their uncompressed size


def kind_of(head: bytes) -> str:
    """The archive kind from its first bytes."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ProbeError("a zstd-compressed archive: the standard library cannot read it (use gzip, bzip2 or xz)")
    return next((kind for magic, kind, _ in _COMPRESSED if head.startswith(magic)), "tar")


class _Tap:
    """The decompressed tar stream as tarfile reads it, keeping the last bytes to find the end-of-archive block."""

    def __init__(self, source):
        self.source, self.position, self.window, self.window_start = source, 0, b"", 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.position += len(data)
        self.window += data
        if len(self.window) > _WINDOW:
            self.window_start += len(self.window) - _WINDOW
            self.window = self.window[-_WINDOW:]
        return data

    def block_at(self, offset: int) -> bytes:
        """The 512 bytes at ``offset`` (fewer when the stream ends first), read on as needed."""
        while self.position < offset + _BLOCK and self.read(_BLOCK):
            pass
        start = offset - self.window_start
        return self.window[max(start, 0):start + _BLOCK] if start >= 0 else b""

    def drain(self) -> None:
        while self.source.read(_CHUNK):
            pass


def _tar_scan(raw, kind: str, verify: bool) -> ArchiveScan:
    opener = next((o for _, k, o in _COMPRESSED if k == kind), None)
    source = opener(raw) if opener else raw
    tap, members, total = _Tap(source), 0, 0
    try:
        with tarfile.open(fileobj=tap, mode="r|") as archive:
            for member in archive:
                if member.isfile():
                    members, total = members + 1, total + member.size
                    if verify:
                        content = archive.extractfile(member)
                        while content.read(_CHUNK):
                            pass
            end = archive.offset
        block = tap.block_at(end)
        if len(block) < _BLOCK:
            return ArchiveScan(f"truncated (no end-of-archive block after {members} files)", kind, members, total)
        if block.strip(b"\0"):
            return ArchiveScan(f"corrupt (invalid tar header at byte {end})", kind, members, total)
        tap.drain()  # the compressed stream's own end: its CRC and length are checked there
    except (EOFError, tarfile.ReadError) as exc:
        if isinstance(exc, EOFError) or "unexpected end" in str(exc) or str(exc) == "empty file":
            return ArchiveScan(f"truncated ({exc})", kind, members, total)
        return ArchiveScan(f"corrupt ({exc})", kind, members, total)
    except (OSError, zlib.error, lzma.LZMAError, tarfile.TarError) as exc:
        return ArchiveScan(f"corrupt ({exc})", kind, members, total)
    return ArchiveScan("complete", kind, members, total)


class ZipNeedsFile(Exception):
    """A zip's directory is at its end: it is read from a file (scan_zip), not from a stream."""


class _Prefixed:
    """A stream whose first bytes were already read (to tell its kind), given back first."""

    def __init__(self, head: bytes, raw):
        self.head, self.raw = head, raw

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.raw.read(size)
        if size < 0:
            data, self.head = self.head + self.raw.read(), b""
            return data
        data, self.head = self.head[:size], self.head[size:]
        return data


def scan(raw, verify: bool = True) -> ArchiveScan:
    """Scan a tar-family archive from a binary stream (a file, a pipe); ``verify`` reads every member's data.

    A zip raises ZipNeedsFile: its directory is at its end, so it is read from a file instead.
    """
    head = b""
    while len(head) < 8:
        more = raw.read(8 - len(head))
        if not more:
            break
        head += more
    kind = kind_of(head)
    if kind == "zip":
        raise ZipNeedsFile()
    if not head:
        return ArchiveScan("truncated (empty file)", "tar", 0, 0)
    return _tar_scan(_Prefixed(head, raw), kind, verify)


def scan_zip(path: Path, verify: bool = True) -> ArchiveScan:
    """A zip's central directory, and with ``verify`` every member read and its CRC-32 checked."""
    members = total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            files = [info for info in archive.infolist() if not info.is_dir()]
            for info in files:
                if verify:
                    with archive.open(info) as content:
                        while content.read(_CHUNK):
                            pass
                members, total = members + 1, total + info.file_size
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        return ArchiveScan(f"corrupt ({exc})", "zip", members, total)
    return ArchiveScan("complete", "zip", members, total)


def scan_path(path: Path, verify: bool = True) -> ArchiveScan:
    """Scan a local archive of any supported kind."""
    with open(path, "rb") as raw:
        kind = kind_of(raw.read(8))
        raw.seek(0)
        if kind == "zip":
            return scan_zip(path, verify)
        if kind == "tar" and not verify:  # headers only: a plain tar on disk seeks past its members' data
            try:
                with tarfile.open(fileobj=raw, mode="r:") as archive:
                    files = [m for m in archive if m.isfile()]
                return ArchiveScan("complete", kind, len(files), sum(m.size for m in files))
            except tarfile.TarError as exc:
                return ArchiveScan(f"corrupt ({exc})", kind, 0, 0)
        return scan(raw, verify)
