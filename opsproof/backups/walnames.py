"""WAL segment names as numbers: continuity is arithmetic on (timeline, segment number).

A segment file is named ``TTTTTTTTXXXXXXXXYYYYYYYY`` (hex): timeline, then the segment number split
into a "log" (xlogid) and a "seg" part, with ``0x100000000 // segment_size`` segments per log
(0x100 for the default 16 MB). Archives add suffixes: ``.gz``/``.lz4``/``.zst``, and pgBackRest a
``-<sha1>`` checksum before them.

>>> parse("000000010000000A000000FF")
Segment(timeline=1, number=2815)
>>> name(1, next_number(2815))
'000000010000000B00000000'
>>> segment_of_lsn("0/5000028")
5
>>> name(2, segment_of_lsn("1/2A000000", 64 * MB), 64 * MB)
'00000002000000010000000A'
>>> archived_name("000000010000000000000003-3c8b6a2cbf0d8c1b1f76d44b7a1b7d3e7e0f6a11.gz")
'000000010000000000000003'
>>> archived_name("000000010000000000000003.partial"), archived_name("README")
(None, None)
>>> history_timeline("00000002.history")
2
"""

from __future__ import annotations

import re
from typing import NamedTuple

MB = 1024 * 1024
DEFAULT_SEGMENT_BYTES = 16 * MB
_COMPRESSED = r"(?:\.(?:gz|lz4|zst|bz2|xz))?"
_SEGMENT = re.compile(rf"^([0-9A-F]{{24}})(?:-[0-9a-f]{{40}})?{_COMPRESSED}$")
_HISTORY = re.compile(rf"^([0-9A-F]{{8}})\.history(?:-[0-9a-f]{{40}})?{_COMPRESSED}$")
# not segments, but expected in an archive: backup history, partial segments at a promotion, catalogues
_KNOWN_OTHERS = re.compile(r"^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup|\.partial)(-[0-9a-f]{40})?(\.\w+)?$|^archive\.info")


class Segment(NamedTuple):
    timeline: int
    number: int  # log * segments_per_log + seg: consecutive segments differ by one


def segments_per_log(segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> int:
    return 0x100000000 // segment_bytes


def parse(segment_name: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> Segment:
    """``000000010000000200000003`` -> Segment(1, 2 * 0x100 + 3); ValueError for anything else."""
    if not re.fullmatch(r"[0-9A-F]{24}", segment_name):
        raise ValueError(f"{segment_name!r} is not a WAL segment name")
    timeline, log, seg = (int(segment_name[i:i + 8], 16) for i in (0, 8, 16))
    if seg >= segments_per_log(segment_bytes):
        raise ValueError(f"{segment_name!r}: seg {seg:#x} is past {segments_per_log(segment_bytes):#x} per log")
    return Segment(timeline, log * segments_per_log(segment_bytes) + seg)


def name(timeline: int, number: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> str:
    log, seg = divmod(number, segments_per_log(segment_bytes))
    return f"{timeline:08X}{log:08X}{seg:08X}"


def next_number(number: int) -> int:
    """The segment after ``number`` (the log rolls over by itself: the number is linear)."""
    return number + 1


def segment_of_lsn(lsn: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> int:
    """The segment number holding LSN ``hi/lo`` (PostgreSQL's text form)."""
    high, low = lsn.split("/")
    return ((int(high, 16) << 32) + int(low, 16)) // segment_bytes


def archived_name(file_name: str) -> str | None:
    """The segment an archive file holds (suffixes stripped), or None when it holds no whole segment."""
    match = _SEGMENT.match(file_name)
    return match.group(1) if match else None


def history_timeline(file_name: str) -> int | None:
    """``00000002.history`` (also pgBackRest's, compressed) -> 2; None otherwise."""
    match = _HISTORY.match(file_name)
    return int(match.group(1), 16) if match else None


def is_known_other(file_name: str) -> bool:
    """Backup history files, ``.partial`` segments, pgBackRest's archive.info: not garbage, not segments."""
    return bool(_KNOWN_OTHERS.match(file_name))


def parse_history(text: str) -> list[tuple[int, str]]:
    """A ``0000000N.history`` file's (parent timeline, switch LSN) lines, oldest first.

    >>> parse_history("1\\t0/5000000\\tno recovery target specified\\n\\n2\\t0/9000000\\tbefore 2026-01-01\\n")
    [(1, '0/5000000'), (2, '0/9000000')]
    """
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and "/" in fields[1]:
            entries.append((int(fields[0]), fields[1]))
    return entries


def timeline_of(number: int, timeline: int, history: list[tuple[int, str]],
                segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> int:
    """The timeline whose file holds segment ``number`` on the way to ``timeline``.

    A parent owns the segments before the one holding its switch point; the segment holding the
    switch point is archived under the child (the parent's copy is a ``.partial``).

    >>> history = [(1, "0/5000028")]
    >>> [timeline_of(n, 2, history) for n in (4, 5, 6)]
    [1, 2, 2]
    """
    for parent, switch_lsn in history:
        if number < segment_of_lsn(switch_lsn, segment_bytes):
            return parent
    return timeline
