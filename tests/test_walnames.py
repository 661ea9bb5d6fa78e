"""WAL segment name arithmetic: parse/format, the log rollover, LSNs, archive suffixes, timeline history."""

import doctest

import pytest

from opsproof.backups import walnames
from opsproof.backups.walnames import MB, Segment


def test_module_examples_hold():
    assert doctest.testmod(walnames).failed == 0


@pytest.mark.parametrize("segment_bytes, per_log", [(16 * MB, 0x100), (1 * MB, 0x1000), (1024 * MB, 4)])
def test_segments_per_log_follow_the_segment_size(segment_bytes, per_log):
    assert walnames.segments_per_log(segment_bytes) == per_log


def test_names_round_trip_across_the_log_rollover():
    last_of_log = walnames.parse("0000000100000003000000FF")
    assert last_of_log == Segment(1, 3 * 0x100 + 0xFF)
    assert walnames.name(1, walnames.next_number(last_of_log.number)) == "000000010000000400000000"
    assert [walnames.parse(walnames.name(7, n)).number for n in range(250, 262)] == list(range(250, 262))


@pytest.mark.parametrize("bad", ["00000001000000000000010G", "0000000100000000000001", "000000010000000000000100"])
def test_malformed_names_are_rejected(bad):
    with pytest.raises(ValueError):
        walnames.parse(bad)


@pytest.mark.parametrize("file_name, segment", [
    ("000000010000000000000003", "000000010000000000000003"),
    ("000000010000000000000003.zst", "000000010000000000000003"),
    ("000000010000000000000003.lz4", "000000010000000000000003"),
    ("000000010000000000000003-" + "a" * 40, "000000010000000000000003"),
    ("000000010000000000000003-" + "a" * 40 + ".gz", "000000010000000000000003"),
    ("000000010000000000000003.00000028.backup", None),
    ("000000010000000000000003.partial", None),
    ("000000010000000000000003.tmp", None),
    ("00000002.history", None),
])
def test_archive_file_names_map_to_their_segment(file_name, segment):
    assert walnames.archived_name(file_name) == segment


def test_known_non_segments_are_not_garbage():
    assert walnames.is_known_other("000000010000000000000003.00000028.backup")
    assert walnames.is_known_other("000000010000000000000003.partial")
    assert walnames.is_known_other("archive.info.copy")
    assert not walnames.is_known_other("notes.txt")


def test_history_walk_assigns_each_segment_its_timeline():
    history = walnames.parse_history("1\t0/5000028\tno recovery target specified\n2\t0/9000000\tbefore x\n")
    owners = [walnames.timeline_of(n, 3, history) for n in range(3, 11)]
    assert owners == [1, 1, 2, 2, 2, 2, 3, 3]  # 3,4 on 1; 5 (switch point) .. 8 on 2; 9 on (boundary) onward on 3
