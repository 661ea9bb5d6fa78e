"""One run at a time: a second run of the environment and suite exits 3 naming the holder, waits with
--wait-lock, takes over a lock whose holder died, and the lock is released on Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsproof.runlock import RunLock, RunLocked

ROOT = Path(__file__).resolve().parent.parent
CHECKS = """\
import os, time
from pathlib import Path

def test_holds_until_released():
    if os.environ.get("STARTED"):
        Path(os.environ["STARTED"]).touch()
        deadline = time.monotonic() + 120
        while not Path(os.environ["RELEASE"]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
"""


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.delenv("STARTED", raising=False)
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "unit.yaml").write_text("tier: staging\nhttp: {}\n")
    pytester.makefile(".ini", pytest="[pytest]\nopsproof_env = unit\nmarkers =\n    dr: d\n")
    pytester.makepyfile(test_checks=CHECKS)
    return pytester.path


def hold(project: Path, *args: str) -> subprocess.Popen:
    """A real run (plain pytest, another process) whose one check holds until ``project/release`` exists."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STARTED": str(project / "started"),
           "RELEASE": str(project / "release")}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-p", "no:cacheprovider",
                                "-p", "no:randomly", "-q", *args], cwd=project, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (project / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.05)
    return process


def release(project: Path, process: subprocess.Popen) -> str:
    (project / "release").touch()
    return process.communicate(timeout=60)[0]


def run(pytester, *args: str):
    return pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly", *args)


def lock_dir(project: Path) -> Path:
    return project / "reports" / "unit"


def test_a_second_run_exits_3_naming_the_holder_and_a_third_waits_with_wait_lock(project, pytester):
    first = hold(project)
    refused = run(pytester)
    assert refused.ret == 3
    (line,) = [line for line in refused.stderr.lines if line.strip()]
    holder = re.fullmatch(r"Exit: opsproof: environment unit, suite all is locked by another run: pid (\d+) on host "
                          r"(\S+), started (\S+), suite all \((.*)\); gave up after waiting 0 s \(--wait-lock\)", line)
    assert holder, line
    assert (int(holder[1]), holder[2]) == (first.pid, socket.gethostname()) and "pytest" in holder[4]
    assert len([p for p in lock_dir(project).iterdir() if p.is_dir()]) == 1  # the refused run wrote nothing

    log = project / "waiting.log"
    with open(log, "w") as output:
        waiting = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-p", "no:cacheprovider",
                                    "-p", "no:randomly", "-q", "--wait-lock", "2m"], cwd=project, stdout=output,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while "waiting up to 120 s (--wait-lock)" not in log.read_text():
        assert waiting.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    assert f"suite all is locked by another run: pid {first.pid} on host" in log.read_text()
    assert "1 passed" in release(project, first) and first.returncode == 0
    assert waiting.wait(timeout=120) == 0, log.read_text()
    assert len((lock_dir(project) / "history.jsonl").read_text().splitlines()) == 2


def test_opsproof_run_passes_wait_lock_to_the_run():
    from opsproof.cli import _pytest_args, build_parser

    args, extra = build_parser().parse_known_args(["run", "--env", "unit", "--wait-lock", "5m"])
    assert extra == [] and _pytest_args(args, None)[-2:] == ["--wait-lock", "5m"]


def test_a_lock_whose_holder_was_killed_is_taken_over_and_said(project, pytester):
    first = hold(project)
    holder = json.loads((lock_dir(project) / "run-unit-all.holder.json").read_text())
    first.kill()
    first.wait(timeout=30)
    result = run(pytester)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert (f"opsproof: took over the lock of environment unit, suite all from pid {first.pid} on host "
            f"{socket.gethostname()}, started {holder['started_at']}, suite all ({' '.join(holder['cmdline'])}), "
            f"which ended without releasing it") in result.stderr.lines


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_release_the_lock(project, how):
    first = hold(project)
    first.send_signal(how)
    output = first.communicate(timeout=60)[0]
    assert first.returncode == 2, output
    assert not (lock_dir(project) / "run-unit-all.holder.json").exists()
    after = RunLock(lock_dir(project), "unit", "all")
    after.acquire()  # free at once, and released rather than abandoned: nothing to take over
    assert after.took_over == []
    after.release()


def test_a_destructive_run_locks_the_whole_environment_and_waits_for_the_others(project, pytester):
    drill = RunLock(lock_dir(project), "unit", "dr", exclusive=True)
    drill.acquire()
    refused = run(pytester, "-m", "not dr")
    assert refused.ret == 3
    assert (f"environment unit, suite not-dr is locked by another run: pid {os.getpid()} on host "
            f"{socket.gethostname()}") in refused.stderr.str() and "suite dr (" in refused.stderr.str()
    drill.release()
    smoke = RunLock(lock_dir(project), "unit", "smoke")
    smoke.acquire()
    refused = run(pytester, "--allow-destructive")
    assert refused.ret == 3 and "Exit: opsproof: environment unit is locked by another run:" in refused.stderr.str()
    assert "suite smoke (" in refused.stderr.str()
    smoke.release()
    assert run(pytester, "--allow-destructive").ret == 0


def test_environment_lock_is_shared_by_suites_and_exclusive_for_drills_and_prune(tmp_path):
    smoke, nightly = RunLock(tmp_path, "unit", "smoke"), RunLock(tmp_path, "unit", "nightly")
    smoke.acquire()
    nightly.acquire()  # two suites of one environment run side by side
    with pytest.raises(RunLocked, match=r"^environment unit is locked by another run: pid \d+ .*suite (nightly|smoke)"):
        RunLock(tmp_path, "unit", "prune", exclusive=True).acquire(wait_s=0.3)
    with pytest.raises(RunLocked, match=r"suite smoke .*gave up after waiting 0.3 s"):
        RunLock(tmp_path, "unit", "smoke").acquire(wait_s=0.3)
    smoke.release()
    nightly.release()
    prune = RunLock(tmp_path, "unit", "prune", exclusive=True)
    prune.acquire()
    with pytest.raises(RunLocked, match=r"suite prune"):
        RunLock(tmp_path, "unit", "smoke").acquire()
    prune.release()


def test_a_bad_wait_lock_is_a_usage_error(project, pytester):
    result = run(pytester, "--wait-lock", "soon")
    assert result.ret == 4 and "--wait-lock: 'soon' is not a duration like 30s, 5m or 1h" in result.stderr.str()
