"""A torn last line (a crash or a full disk mid-write) is set aside with a note and the chain goes on;
a write that fails is cut back off, so a crash can tear only the last line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opsproof import history
from test_history import make_run

ENV = "tier: staging\nhttp: {}\n"


def project(pytester) -> Path:
    pytester.makefile(".ini", pytest="[pytest]\nopsproof_env = unit\n")
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "unit.yaml").write_text(ENV)
    pytester.makepyfile(test_checks="def test_ok(): pass\n")
    return pytester.path / "reports" / "unit" / "history.jsonl"


def run(pytester):
    return pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly")


def test_a_torn_last_line_is_set_aside_and_the_next_three_runs_record(pytester):
    path = project(pytester)
    for _ in range(2):
        assert run(pytester).ret == 0
    whole = path.read_bytes()
    torn = whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1 + 200]  # the second record cut after 200 bytes
    path.write_bytes(torn)
    before = history.verify(path)
    assert before.problems[0] == "line 2: torn last line (200 bytes, an interrupted write; the next run sets it aside)"

    outputs = [run(pytester) for _ in range(3)]
    assert [r.ret for r in outputs] == [0, 0, 0], outputs[0].stdout.str() + outputs[0].stderr.str()
    assert "Traceback" not in outputs[0].stdout.str() + outputs[0].stderr.str()
    (side,) = path.parent.glob("history.jsonl.torn-*")
    assert side.read_bytes() == torn[torn.rindex(b"\n", 0, len(torn) - 1) + 1:]
    assert (f"opsproof: history: a torn last line (200 bytes) was set aside to {side.name}; the chain goes on from "
            f"seq 1 (recorded as seq 2)") in outputs[0].stderr.lines

    records = history.read(path)
    assert [(r["seq"], r.get("type", "run")) for r in records] == [(1, "run"), (2, "torn"), (3, "run"), (4, "run"),
                                                                    (5, "run")]
    lost = records[1]
    second_run = sorted(p.name for p in path.parent.iterdir() if p.is_dir())[1]
    assert lost["unrecorded"] == [second_run] and lost["bytes"] == 200 and lost["set_aside"] == side.name
    result = history.verify(path, runs_dir=path.parent)
    assert result.ok, result.problems
    assert result.notes[0].startswith("line 2: a torn last line (200 bytes, sha256 ") and side.name in result.notes[0]
    assert result.notes[1] == (f"run folder {second_run} has no history record: its record was lost in the torn line "
                               f"set aside at line 2")


def record(base: Path, name: str) -> dict:
    return history.record_for_run(make_run(base, name), base / "history.jsonl", base)


def test_a_tail_of_nul_bytes_is_torn_and_a_json_last_line_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "history.jsonl"
    history.append(path, record(tmp_path, "run1"))
    path.write_bytes(path.read_bytes() + b"\0" * 512)  # what a crash after the size grew but before the data did leaves
    written = history.append(path, record(tmp_path, "run2"))
    assert [r.get("type") for r in written] == ["torn", None] and written[0]["bytes"] == 512
    assert written[0]["unrecorded"] == []  # run2, whose record this is, is not counted as lost
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # a whole record whose newline never reached the disk
    (third,) = history.append(path, record(tmp_path, "run3"))
    assert third["seq"] == 4 and history.verify(path).ok


def test_verify_cli_reports_the_set_aside_line_and_stays_green(pytester, capsys):
    from opsproof.cli import main

    path = project(pytester)
    assert run(pytester).ret == 0
    fragment = b'{"artifacts": [{"name": "junit.xml", "pa'  # a record cut short
    path.write_bytes(path.read_bytes() + fragment)
    assert run(pytester).ret == 0
    capsys.readouterr()
    code = main(["history", "verify", "--env", str(pytester.path / "environments" / "unit.yaml"), "--reports-dir",
                 str(pytester.path / "reports")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"NOTE {path}: line 2: a torn last line ({len(fragment)} bytes, sha256 " in out
    assert "history intact" in out


FILL_TO_THE_LIMIT = """\
import resource, signal, sys
from pathlib import Path
from opsproof import history

path = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() returns short or fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, resource.RLIM_INFINITY))
try:
    history.append(path, {"run_id": "x" * 1000})
except history.HistoryError as error:
    print(error)
"""


def test_a_write_the_disk_cannot_take_leaves_the_history_as_it_was(tmp_path):
    """The kernel cuts the write short at the file-size limit, as a full disk does: the part written is removed."""
    path = tmp_path / "history.jsonl"
    history.append(path, record(tmp_path, "run1"))
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", FILL_TO_THE_LIMIT, str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == f"{path}: cannot append the history record: No space left on device (short write)"
    assert path.read_bytes() == before
    assert history.verify(path).ok and history.append(path, record(tmp_path, "run2"))[0]["seq"] == 2
