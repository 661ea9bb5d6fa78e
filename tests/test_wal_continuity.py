"""Continuity arithmetic on archive directories: a timeline switch walked through its history file, and
the time one directory scan plus the walk take on 10,000 segments. The server's position is given as
data here; tests/test_backup_wal.py asks a real server."""

import os
import time

from opsproof.backups import wal, walnames
from opsproof.backups.walnames import DEFAULT_SEGMENT_BYTES


def segment_files(directory, timeline: int, numbers, suffix: str = "") -> None:
    for number in numbers:
        path = directory / (walnames.name(timeline, number) + suffix)
        path.touch()
        if not suffix:
            os.truncate(path, DEFAULT_SEGMENT_BYTES)  # sparse: the size of a whole segment, no disk used


def test_continuity_follows_the_history_across_a_timeline_switch(tmp_path):
    segment_files(tmp_path, 1, range(2, 6))
    (tmp_path / "000000010000000000000006.partial").touch()
    (tmp_path / "00000002.history").write_text("1\t0/6000028\tno recovery target specified\n")
    segment_files(tmp_path, 2, range(6, 10), ".zst")
    server = wal.ServerWal(timeline=2, current=10, segment_bytes=DEFAULT_SEGMENT_BYTES, source=None)
    summary = wal.continuity(wal.list_directory(str(tmp_path)), server, "000000010000000000000002", 300)
    assert (summary["segments_checked"], summary["found"], summary["missing_lost_count"]) == (8, 8, 0)
    assert (summary["range_start"], summary["range_end"]) == ("000000010000000000000002", "000000020000000000000009")
    assert summary["unrecognised_files"] == []
    (tmp_path / "000000020000000000000007.zst").unlink()
    summary = wal.continuity(wal.list_directory(str(tmp_path)), server, "000000010000000000000002", 300)
    assert summary["missing_lost"] == ["000000020000000000000007"]
    (tmp_path / "00000002.history").unlink()  # without it the walk cannot know segments 2..5 belong to timeline 1
    summary = wal.continuity(wal.list_directory(str(tmp_path)), server, "000000010000000000000002", 300)
    assert summary["missing_lost"][:2] == ["000000020000000000000002", "000000020000000000000003"]


def test_ten_thousand_segments_are_judged_in_one_scan_well_under_a_second(tmp_path):
    segment_files(tmp_path, 1, range(1, 10_001))
    server = wal.ServerWal(timeline=1, current=10_001, segment_bytes=DEFAULT_SEGMENT_BYTES, source=None)
    started = time.perf_counter()
    listing = wal.list_directory(str(tmp_path))
    listed_s = time.perf_counter() - started
    summary = wal.continuity(listing, server, walnames.name(1, 1), 300)
    total_s = time.perf_counter() - started
    print(f"10,000 segments: listed in {listed_s * 1000:.0f} ms, judged in {total_s * 1000:.0f} ms in all")
    assert summary["segments_checked"] == summary["found"] == 10_000
    assert summary["range_end"] == "000000010000002700000010"
    assert total_s < 1.0
