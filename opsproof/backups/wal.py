"""WAL archive continuity, WAL-G ``wal-verify integrity timeline`` style, on any archive directory.

Every segment from the latest base backup's start to the last one the server has finished must be
in the archive: a hole makes point-in-time recovery stop there (pg_probackup#587,
barman-cloud#618: backups reported OK whose WAL was gone). Each segment is:

- ``FOUND``: in the archive (a bare ``cp %p`` copy of the wrong size, e.g. truncated, does not count);
- ``MISSING_UPLOADING``: missing, at the end of the range, finished within ``delayed_after`` and
  queued on the server (``<name>.ready``, seen through ``pg_ls_archive_statusdir()``);
- ``MISSING_DELAYED``: the same without a visible ``.ready``;
- ``MISSING_LOST``: any other missing segment: a hole before an archived segment, or a tail older
  than ``delayed_after`` (the archive alone cannot restore it, even if the server still has it).

>>> summary = continuity(listing, server, start="000000010000000000000002", delayed_after_s=300)  # doctest: +SKIP
>>> summary["missing_lost"], summary["range_end"]                                                 # doctest: +SKIP
(['000000010000000000000005'], '000000010000000000000009')
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from opsproof.backups import walnames
from opsproof.errors import ProbeError

FOUND, DELAYED, UPLOADING, LOST = "FOUND", "MISSING_DELAYED", "MISSING_UPLOADING", "MISSING_LOST"
SHOWN = 5  # missing segments named in the summary


@dataclass
class Listing:
    """What an archive holds: segment name -> size (None when not a bare copy), history files, the rest."""

    segments: dict[str, int | None] = field(default_factory=dict)
    histories: dict[int, str] = field(default_factory=dict)  # timeline -> file ref, to read
    unrecognised: list[str] = field(default_factory=list)
    read_history: object = None  # ref -> text

    def add(self, file_name: str, ref: str, size_bytes: int | None) -> None:
        segment = walnames.archived_name(file_name)
        if segment is not None:
            # only a bare copy (cp %p) must be segment-sized: pgBackRest's files may be encrypted, and
            # its own `verify` checks their checksums
            self.segments[segment] = size_bytes if file_name == segment else None
        elif (timeline := walnames.history_timeline(file_name)) is not None:
            self.histories[timeline] = ref
        elif not walnames.is_known_other(file_name):
            self.unrecognised.append(file_name)

    def history(self, timeline: int) -> list[tuple[int, str]]:
        ref = self.histories.get(timeline)
        return walnames.parse_history(self.read_history(ref)) if ref else []

    def max_timeline(self) -> int | None:
        timelines = {int(s[:8], 16) for s in self.segments} | set(self.histories)
        return max(timelines) if timelines else None


def list_directory(directory: str) -> Listing:
    """One scan of the archive directory (subdirectories too: pgBackRest keeps 256 segments per folder)."""
    if not os.path.isdir(directory):
        raise ProbeError(f"WAL archive {directory} is not a directory")
    listing = Listing(read_history=_read_local)
    pending = [directory]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif walnames.archived_name(entry.name) == entry.name:  # only plain segments need a size
                    listing.add(entry.name, entry.path, entry.stat().st_size)
                else:
                    listing.add(entry.name, entry.path, None)
    return listing


def _read_local(path: str) -> str:
    data = Path(path).read_bytes()
    return (gzip.decompress(data) if path.endswith(".gz") else data).decode(errors="replace")


def list_pgbackrest(repository, archive_id: str) -> Listing:
    """The stanza's archive through ``pgbackrest repo-ls`` (any repository type: posix, S3, Azure...)."""
    path = f"archive/{repository.stanza}/{archive_id}"
    entries = repository.repo_ls(path)
    listing = Listing(read_history=repository.repo_get)
    for relative, info in entries.items():
        if info.get("type") == "file":
            listing.add(relative.rsplit("/", 1)[-1], f"{path}/{relative}", info.get("size"))
    return listing


@dataclass
class ServerWal:
    """Where the source server is: its timeline, current segment and segment size."""

    timeline: int
    current: int  # segment number being written: not expected in the archive yet
    segment_bytes: int
    source: object  # the PostgresProbe, asked again only when the range ends in missing segments

    @classmethod
    def of(cls, source) -> "ServerWal":
        """The insert timeline from ``pg_walfile_name(pg_current_wal_lsn())``: right after a promotion
        ``pg_control_checkpoint()`` still shows the old timeline until the next checkpoint."""
        walfile, lsn, segment_bytes = source.rows(
            "SELECT pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn()::text,"
            " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')")[0]
        return cls(int(walfile[:8], 16), walnames.segment_of_lsn(lsn, segment_bytes), segment_bytes, source)

    def pg_wal(self) -> tuple[dict[str, float], set[str] | None]:
        """Ages (on the server's clock) of segments still in pg_wal, and those queued for archiving
        (None: not visible)."""
        try:
            ages_s = {name: float(age_s) for name, age_s in self.source.rows(
                "SELECT name, extract(epoch FROM now() - modification) FROM pg_ls_waldir()")}
        except ProbeError as error:
            raise ProbeError(f"pg_ls_waldir(): {error}; grant pg_monitor to tell a delayed segment from "
                             "a lost one", unreachable=error.unreachable) from None
        try:
            ready = {row[0].removesuffix(".ready") for row in self.source.rows(
                "SELECT name FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")}
        except ProbeError:
            ready = None
        return ages_s, ready


def continuity(listing: Listing, server: ServerWal, start: str | None, delayed_after_s: float) -> dict:
    """Judge every segment from ``start`` (None: the oldest archived) to the server's last finished one."""
    size = server.segment_bytes
    history = listing.history(server.timeline) if server.timeline > 1 else []
    if start is None:
        numbers = [walnames.parse(s, size).number for s in listing.segments]
        if not numbers:
            raise ProbeError("the WAL archive holds no segment to start from")
        first = min(numbers)
    else:
        first = walnames.parse(start, size).number
    expected = [walnames.name(walnames.timeline_of(n, server.timeline, history, size), n, size)
                for n in range(first, server.current)]
    found = [_found(listing, name, size) for name in expected]
    last_found = max((i for i, ok in enumerate(found) if ok), default=-1)
    statuses = [FOUND if ok else LOST for ok in found]
    if last_found < len(expected) - 1:  # a missing tail may still be on its way
        ages_s, ready = server.pg_wal()
        for i in range(last_found + 1, len(expected)):
            age_s = ages_s.get(expected[i])  # None: gone from pg_wal, so long finished
            if age_s is not None and age_s <= delayed_after_s:
                statuses[i] = UPLOADING if ready is not None and expected[i] in ready else DELAYED
        uploading_visible = ready is not None
    else:
        uploading_visible = None  # not asked: nothing was missing at the end
    lost = [n for n, s in zip(expected, statuses) if s == LOST]
    return {
        "segments_checked": len(expected), "found": statuses.count(FOUND),
        "missing_lost_count": len(lost), "missing_lost": lost[:SHOWN],
        "missing_delayed": statuses.count(DELAYED), "missing_uploading": statuses.count(UPLOADING),
        "uploading_visible": uploading_visible,
        "range_start": expected[0] if expected else None, "range_end": expected[-1] if expected else None,
        "timeline": server.timeline, "unrecognised_files": listing.unrecognised[:SHOWN],
    }


def _found(listing: Listing, name: str, segment_bytes: int) -> bool:
    """Archived, and when stored uncompressed, whole (a truncated copy restores nothing)."""
    if name not in listing.segments:
        return False
    size = listing.segments[name]
    return size is None or size == segment_bytes


def backup_label_start(backup_dir: str) -> str:
    """The first segment a plain-format base backup needs: ``START WAL LOCATION: 0/2000028 (file X)``."""
    label = Path(backup_dir) / "backup_label"
    try:
        text = label.read_text(errors="replace")
    except OSError as error:
        raise ProbeError(f"cannot read {label}: {error.strerror}") from None
    match = re.search(r"^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", text, re.MULTILINE)
    if not match:
        raise ProbeError(f"{label} has no START WAL LOCATION line")
    return match.group(1)


class WalArchive:
    """A backup set's ``wal_archive``: its listing (once per run) and where continuity starts."""

    def __init__(self, backups_probe):
        self.probe, self.settings = backups_probe, backups_probe.target.wal_archive
        self._listing: Listing | None = None

    def listing(self) -> Listing:
        if self._listing is None:
            if self.settings.location:
                self._listing = list_directory(os.path.expanduser(self.settings.location))
            else:  # pgbackrest: the stanza's current archive id (e.g. 16-1) in its repository
                repository = self.probe.pgbackrest()
                archives = repository.info().get("archive", [])
                if not archives:
                    raise ProbeError(f"pgbackrest info lists no archive for stanza {repository.stanza}")
                self._listing = list_pgbackrest(repository, archives[-1]["id"])
        return self._listing

    def start_segment(self) -> str | None:
        """The latest base backup's first WAL segment (None when ``from_backup: false``)."""
        if not self.settings.from_backup:
            return None
        if self.probe.target.format == "pgbackrest":
            latest = self.probe.pgbackrest().latest()
            if latest is None or not latest.get("wal_start"):
                raise ProbeError("pgbackrest info lists no backup to check WAL continuity from")
            return latest["wal_start"]
        return backup_label_start(self.probe.require_latest().ref)

    def continuity(self, source) -> dict:
        return continuity(self.listing(), ServerWal.of(source), self.start_segment(), self.settings.delayed_after)

    def timelines(self, source) -> tuple[int | None, int]:
        """(highest timeline in the archive, by segment names and history files; the server's)."""
        return self.listing().max_timeline(), ServerWal.of(source).timeline
