"""What every benchmark here does: time commands side by side, a warm-up first, the median of the rest.

``compare`` interleaves the commands (a, b, a, b, ...), so a busy machine slows each side alike, and
keeps each run's peak RSS (``wait4``'s ``ru_maxrss``: the process, or its largest reaped child) and its
CPU time (user + system, children included), which a shared machine disturbs far less than wall time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Side:
    """One side of a comparison: its command and what its runs measured."""

    label: str
    command: list[str]
    env: dict
    failure_word: str | None = None
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # user + system, the process and its reaped children
    rss_kb: list[int] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def peak_rss_mb(self) -> float:
        return max(self.rss_kb) / 1024


def run_once(command: list[str], env: dict, cwd: Path, timeout_s: float = 600) -> tuple[float, int, str, int, float]:
    """Wall seconds, exit code, output, peak RSS (KB) and CPU seconds of one run, read by ``wait4``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    deadline = started + timeout_s
    while chunk := process.stdout.read1(1 << 16):  # until EOF; then reap the child ourselves: its own rusage
        output += chunk
        if time.perf_counter() > deadline:
            process.kill()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    cpu_s = usage.ru_utime + usage.ru_stime
    return elapsed, process.returncode, output.decode(errors="replace"), usage.ru_maxrss, cpu_s


def compare(sides: list[Side], runs: int, cwd: Path) -> list[Side]:
    """Run each side ``runs`` times, interleaved, after one warm-up each; exit when a run fails."""
    for side in sides:
        run_once(side.command, side.env, cwd)  # warm-up: page cache, bytecode, first connections
    for _ in range(runs):
        for side in sides:
            seconds, code, output, rss_kb, cpu_s = run_once(side.command, side.env, cwd)
            if code != 0 or (side.failure_word and side.failure_word in output):
                sys.exit(f"{side.label} did not pass (exit {code}):\n{output[-2000:]}")
            side.seconds.append(seconds)
            side.rss_kb.append(rss_kb)
            side.cpu_seconds.append(cpu_s)
    return sides


def median_of(runs: int, command: list[str], env: dict, cwd: Path, label: str, failure_word: str | None = None) -> float:
    """Median wall time of ``runs`` runs of one command after a warm-up (benchmarks of one side)."""
    return compare([Side(label, command, env, failure_word)], runs, cwd)[0].median_s


def users_env(extra: dict | None = None) -> dict:
    """The environment as users run opsproof: bytecode caches on (some CI shells set
    PYTHONDONTWRITEBYTECODE, which makes every run recompile and re-rewrite the check modules)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def before(command: list[str], checkout: str) -> tuple[list[str], dict]:
    """``opsproof ...`` (``command``) as another checkout runs it (``--before DIR``): its code, through its own
    ``main``, since the ``opsproof`` script here calls this revision's entry point, which it may not have."""
    code = "import sys; from opsproof.cli import main; sys.exit(main())"
    # -P: the working directory (this checkout, where the benchmarks run) is not put before PYTHONPATH
    return [sys.executable, "-P", "-c", code, *command[1:]], users_env({"PYTHONPATH": checkout})


@contextmanager
def sandbox(reuse: str | None, prefix: str):
    """The sandbox to measure against: a running one (``--sandbox DIR``, left up) or one of its own."""
    from opsproof import sandbox as sandbox_module

    state_dir = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix=prefix))
    box = sandbox_module.up(state_dir)
    try:
        yield box, state_dir
    finally:
        if not reuse:
            sandbox_module.down(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)
