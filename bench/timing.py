"""What every benchmark here does: time a command, a warm-up first, the median of the rest."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(command: list[str], env: dict, cwd: Path, timeout_s: float = 600) -> tuple[float, int, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    return time.perf_counter() - started, result.returncode, result.stdout + result.stderr


def median_of(runs: int, command: list[str], env: dict, cwd: Path, label: str, failure_word: str | None = None) -> float:
    """Median wall time of ``runs`` runs after one warm-up; exits when a run fails (exit code or word)."""
    timed(command, env, cwd)  # warm-up: page cache, first connections
    times = []
    for _ in range(runs):
        seconds, code, output = timed(command, env, cwd)
        if code != 0 or (failure_word and failure_word in output):
            sys.exit(f"{label} did not pass (exit {code}):\n{output[-2000:]}")
        times.append(seconds)
    return statistics.median(times)
