"""Counting a pattern in log lines as they stream past, in bounded memory: what ``tail -c N | grep -c`` does,
plus each matching line judged by its own timestamp against a window.

Bytes come in chunks (a file read from its end, a command's output, a pod's log); only whole lines are
searched, one line longer than ``MAX_LINE`` is dropped (a sparse file's hole is one such "line"), and only the
last few matching lines are kept. A line without a timestamp of its own (a traceback's second line) takes
the last one before it.

>>> scan = LogScan(r"ERROR", stamps=Stamps("iso"), cutoff=0.0)
>>> scan.feed(b"2026-01-01T00:00:00Z ERROR one\\n2026-01-01T00:00:01Z ok\\nTraceback ERROR two\\n")
>>> scan.finish(); scan.count, [line for _, line in scan.kept]
(2, ['2026-01-01T00:00:00Z ERROR one', 'Traceback ERROR two'])
"""

from __future__ import annotations

import re
from collections import deque
from datetime import UTC, datetime, timedelta, timezone

MAX_LINE = 1 << 20
LINE_CHARS = 300  # a kept line is cut here
CHUNK = 1 << 20

_ISO = rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
_DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{1,2}", "d": r"\d{1,2}", "H": r"\d{1,2}", "I": r"\d{1,2}",
               "M": r"\d{2}", "S": r"\d{2}", "f": r"\d{1,6}", "z": r"(?:Z|[+-]\d{2}:?\d{2})", "b": r"[A-Za-z]{3}",
               "B": r"[A-Za-z]+", "a": r"[A-Za-z]{3}", "p": r"(?:AM|PM|am|pm)", "j": r"\d{1,3}", "%": "%"}


class Stamps:
    """Finds and reads a line's timestamp: ``iso`` or a strptime format (``%d/%b/%Y:%H:%M:%S %z``).

    >>> Stamps("%b %d %H:%M:%S").read(b"Dec  2 16:05:09 web1 sshd: ERROR").month
    12
    """

    def __init__(self, format: str = "iso", utc_offset: str = "+00:00"):
        self.format = format
        sign = -1 if utc_offset.startswith("-") else 1
        digits = utc_offset[1:].replace(":", "")
        self.zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        if format == "iso":
            self.regex = re.compile(_ISO)
        else:
            parts = re.split(r"(%.)", format)
            text = "".join(_DIRECTIVES.get(p[1], re.escape(p)) if p.startswith("%") and len(p) == 2
                           else re.sub(r"\\ ", r"\\s+", re.escape(p)) for p in parts)
            self.regex = re.compile(text.encode())

    def read(self, line: bytes) -> datetime | None:
        found = self.regex.search(line)
        if found is None:
            return None
        text = found.group().decode(errors="replace")
        try:
            if self.format == "iso":
                stamp = datetime.fromisoformat(text.replace(",", ".").replace("Z", "+00:00"))
            else:
                stamp = datetime.strptime(" ".join(text.split()), " ".join(self.format.split()))
        except ValueError:
            return None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=self.zone)
        if "%Y" not in self.format and "%y" not in self.format and self.format != "iso":  # syslog: no year
            now = datetime.now(UTC)
            stamp = stamp.replace(year=now.year)
            if stamp > now + timedelta(days=1):
                stamp = stamp.replace(year=now.year - 1)
        return stamp


class LogScan:
    """Feed it bytes; it counts lines matching ``pattern`` at or after ``cutoff`` (epoch seconds; with
    ``stamps`` only), keeps the last ``keep`` of them, and knows the first timestamp it saw."""

    def __init__(self, pattern: str, ignore_case: bool = False, stamps: Stamps | None = None,
                 cutoff: float | None = None, keep: int = 5, partial_start: bool = False):
        self.pattern = re.compile(pattern.encode(), re.IGNORECASE if ignore_case else 0)
        self.stamps, self.cutoff, self.keep = stamps, cutoff, keep
        self.count = 0
        self.kept: deque[tuple[str | None, str]] = deque(maxlen=max(keep, 1))
        self.bytes_read = 0
        self.lines_dropped = 0  # longer than MAX_LINE: not judged
        self.first_stamp: datetime | None = None
        self._last_stamp: datetime | None = None
        self._carry = b""
        self._skip_partial = partial_start  # started mid-file: the first line is a fragment

    def feed(self, chunk: bytes) -> None:
        self.bytes_read += len(chunk)
        data = self._carry + chunk if self._carry else chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._carry = data
            if len(self._carry) > MAX_LINE:
                self._carry, self._skip_partial = b"", True  # the rest of this line is a fragment too
                self.lines_dropped += 1
            return
        whole, self._carry = data[:end + 1], data[end + 1:]
        if self._skip_partial:
            whole = whole[whole.find(b"\n") + 1:]
            self._skip_partial = False
        self._lines(whole)

    def finish(self) -> None:
        """The last line may lack its newline."""
        if self._carry and not self._skip_partial and len(self._carry) <= MAX_LINE:
            self._lines(self._carry + b"\n")
        self._carry = b""

    def _lines(self, data: bytes) -> None:
        if self.stamps is not None and self.first_stamp is None:
            self.first_stamp = self.stamps.read(data[:4096])
        before = self._last_stamp
        position = 0
        while True:
            found = self.pattern.search(data, position)
            if found is None:
                break
            start = data.rfind(b"\n", 0, found.start()) + 1
            stop = data.find(b"\n", max(found.start(), found.end()))
            stop = len(data) if stop < 0 else stop
            line = data[start:stop]
            position = stop + 1
            stamp = self._stamp_of(data, start, line, before) if self.stamps is not None else None
            if self.cutoff is not None and stamp is not None and stamp.timestamp() < self.cutoff:
                continue
            self.count += 1
            if self.keep:
                text = line.decode(errors="replace").rstrip("\r")
                self.kept.append((stamp.isoformat() if stamp else None,
                                  text if len(text) <= LINE_CHARS else text[:LINE_CHARS] + "..."))
            if position >= len(data):
                break
        if self.stamps is not None:
            self._last_stamp = self._stamp_before(data, len(data), before)

    def _stamp_of(self, data: bytes, start: int, line: bytes, before: datetime | None) -> datetime | None:
        return self.stamps.read(line) or self._stamp_before(data, start, before)

    def _stamp_before(self, data: bytes, end: int, before: datetime | None, lines: int = 200) -> datetime | None:
        """The timestamp of the nearest stamped line before ``end`` (at most ``lines`` back), else ``before``."""
        while end > 0 and lines > 0:
            start = data.rfind(b"\n", 0, end - 1) + 1
            stamp = self.stamps.read(data[start:end])
            if stamp is not None:
                return stamp
            end, lines = start, lines - 1
        return before

    def matches(self) -> list[dict]:
        """The kept matching lines, most recent last: ``{"time": ..., "line": ...}``."""
        return [{"time": t, "line": line} if t else {"line": line} for t, line in list(self.kept)[-self.keep:]] \
            if self.keep else []


def scan_file(path: str, scan: LogScan, max_bytes: int) -> int:
    """Feed the last ``max_bytes`` of a local file to ``scan``; returns the file's size."""
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        start = max(0, size - max_bytes)
        file.seek(start)
        scan._skip_partial = start > 0
        for chunk in iter(lambda: file.read(CHUNK), b""):
            scan.feed(chunk)
    scan.finish()
    return size
