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


def required_literals(pattern: str, ignore_case: bool = False) -> tuple[list[bytes] | None, bool]:
    """Strings of which every match holds one (the longest plain run of each top-level branch), lower-cased
    when the match ignores case; None when some branch has no such run of 3 characters or more.

    >>> required_literals("ERROR|Traceback")
    ([b'ERROR', b'Traceback'], False)
    >>> required_literals("(?i)Proof .* failed")
    ([b' failed'], True)
    >>> required_literals("a+b|ERROR")
    (None, False)
    """
    try:
        from re import _constants as constants, _parser as parser
    except ImportError:  # Python < 3.11
        import sre_constants as constants
        import sre_parse as parser
    try:
        parsed = parser.parse(pattern)
    except re.error:
        return None, ignore_case
    folded = ignore_case or bool(parsed.state.flags & re.IGNORECASE)
    items = list(parsed)
    branches = items[0][1][1] if len(items) == 1 and items[0][0] is constants.BRANCH else [items]
    literals = []
    for branch in branches:
        best, run = b"", bytearray()
        for op, argument in [*branch, (None, None)]:
            if op is constants.LITERAL and argument < 128:
                run.append(argument)
                continue
            best = max(best, bytes(run), key=len)
            run.clear()
        if len(best) < 3:
            return None, folded
        literals.append(best.lower() if folded else best)
    return literals, folded


class LogScan:
    """Feed it bytes; it counts lines matching ``pattern`` at or after ``cutoff`` (epoch seconds; with
    ``stamps`` only), keeps the last ``keep`` of them, and knows the first timestamp it saw."""

    def __init__(self, pattern: str, ignore_case: bool = False, stamps: Stamps | None = None,
                 cutoff: float | None = None, keep: int = 5, partial_start: bool = False):
        self.pattern = re.compile(pattern.encode(), re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
        self.literals, self.folded = required_literals(pattern, ignore_case)
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
        """Search the whole lines ``chunk`` completes, in place (no copy of the chunk); keep its last fragment."""
        self.bytes_read += len(chunk)
        first = chunk.find(b"\n")
        if first < 0:
            self._carry += chunk
            if len(self._carry) > MAX_LINE:
                self._carry, self._skip_partial = b"", True  # the rest of this line is a fragment too
                self.lines_dropped += 1
            return
        head, self._carry = self._carry + chunk[:first + 1], b""  # the line the previous chunks began
        if self._skip_partial:
            self._skip_partial = False
        elif len(head) > MAX_LINE:
            self.lines_dropped += 1
        else:
            self._lines(head, 0, len(head))
        last = chunk.rfind(b"\n")
        if last > first:
            self._lines(chunk, first + 1, last + 1)
        self._carry = chunk[last + 1:]

    def finish(self) -> None:
        """The last line may lack its newline."""
        if self._carry and not self._skip_partial and len(self._carry) <= MAX_LINE:
            line = self._carry + b"\n"
            self._lines(line, 0, len(line))
        self._carry = b""

    def _lines(self, data: bytes, lo: int, hi: int) -> None:
        """Judge the whole lines in ``data[lo:hi]``."""
        if self.stamps is not None and self.first_stamp is None:
            self.first_stamp = self.stamps.read(data[lo:lo + 4096])
        before = self._last_stamp
        for start, stop in self._matching_lines(data, lo, hi):
            self._matched(data, start, data[start:stop], before, lo)
        if self.stamps is not None:
            self._last_stamp = self._stamp_before(data, hi, before, lo)

    def _matching_lines(self, data: bytes, lo: int, hi: int):
        """(start, stop) of each line of ``data[lo:hi]`` the pattern matches. With literals every match must
        contain, only lines holding one are searched (``bytes.find`` runs at memory speed; the regex engine
        does not)."""
        def line_around(at: int) -> tuple[int, int]:
            start, stop = data.rfind(b"\n", lo, at) + 1, data.find(b"\n", at, hi)
            return (start or lo), (hi if stop < 0 else stop)

        if self.literals is None:
            position = lo
            while position < hi:
                found = self.pattern.search(data, position, hi)
                if found is None:
                    return
                start, stop = line_around(found.start())
                yield start, stop
                position = stop + 1
            return
        haystack = data.lower() if self.folded else data
        upcoming = {literal: haystack.find(literal, lo, hi) for literal in self.literals}
        while True:
            at = min((p for p in upcoming.values() if p >= 0), default=-1)
            if at < 0:
                return
            start, stop = line_around(at)
            if self.pattern.search(data, start, stop):
                yield start, stop
            for literal, p in upcoming.items():
                if 0 <= p <= stop:
                    upcoming[literal] = haystack.find(literal, stop + 1, hi)

    def _matched(self, data: bytes, start: int, line: bytes, before: datetime | None, lo: int) -> None:
        stamp = (self.stamps.read(line) or self._stamp_before(data, start, before, lo)) if self.stamps else None
        if self.cutoff is not None and stamp is not None and stamp.timestamp() < self.cutoff:
            return
        self.count += 1
        if self.keep:
            text = line.decode(errors="replace").rstrip("\r")
            self.kept.append((stamp.isoformat() if stamp else None,
                              text if len(text) <= LINE_CHARS else text[:LINE_CHARS] + "..."))

    def _stamp_before(self, data: bytes, end: int, before: datetime | None, lo: int = 0,
                      lines: int = 200) -> datetime | None:
        """The timestamp of the nearest stamped line in ``data[lo:end]`` (at most ``lines`` back), else ``before``."""
        while end > lo and lines > 0:
            start = max(lo, data.rfind(b"\n", lo, end - 1) + 1)
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
