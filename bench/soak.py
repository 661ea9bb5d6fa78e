"""Benchmark: a soak of the smoke suite must not grow memory, and a sample must cost what one smoke run's checks do.

Starts its own sandbox and points the embedded environment (environments/local.yaml) at it. First the
smoke suite's check time without start-up, ``--runs`` plain ``opsproof run --suite smoke`` (the sum of the
checks' durations in results.json: no interpreter start, imports, collection or report writing); then one
``opsproof run --suite smoke --soak WINDOW/EVERY``, reading the process's RSS (/proc/PID/status VmRSS) at
every progress line. Prints RSS at the first and last sample, and the median time per sample against the
plain run's check time. Usage: ``.venv/bin/python bench/soak.py [--window 3m] [--every 10s]``;
``--ten-minutes`` runs the issue's 10-minute soak at 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsproof import sandbox as sandbox_module

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"soak: sample (\d+) of (\d+) done in ([\d.]+) s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def check_time_s(command: list[str], env: dict, reports: Path) -> float:
    """One plain smoke run; its checks' summed durations from results.json."""
    subprocess.run(command + ["--reports-dir", str(reports)], env=env, cwd=ROOT, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    results = max(reports.glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
    return sum(check["duration_s"] for check in json.loads(results.read_text())["checks"])


def soak(command: list[str], env: dict) -> list[tuple[int, float, int]]:
    """(sample, seconds, RSS kB) at each progress line of one soak run."""
    samples = []
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        found = PROGRESS.search(line)
        if found:
            samples.append((int(found.group(1)), float(found.group(3)), rss_kb(process.pid)))
            print(f"  sample {found.group(1)}/{found.group(2)}: {float(found.group(3)) * 1000:6.0f} ms, "
                  f"RSS {samples[-1][2] / 1024:.1f} MiB", flush=True)
    process.wait()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--window", default="3m")
    parser.add_argument("--every", default="10s")
    parser.add_argument("--ten-minutes", action="store_true", help="the issue's soak: 10m at 10s")
    parser.add_argument("--runs", type=int, default=5, help="plain smoke runs for the check time (median)")
    args = parser.parse_args()
    window = "10m" if args.ten_minutes else args.window
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-bench-soak-"))
    sandbox_module.up(state_dir)
    try:
        env_file = state_dir / "local.yaml"  # beside the sandbox's vars.env, which it reads
        env_file.write_text((ROOT / "environments" / "local.yaml").read_text()
                            .replace("vars_file: ../.opsproof/sandbox/vars.env", "vars_file: vars.env"))
        opsproof = str(Path(sys.executable).parent / "opsproof")
        base = [opsproof, "run", "--env", str(env_file), "--suite", "smoke"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        plain = [check_time_s(base + ["-q"], env, state_dir / "plain") for _ in range(args.runs)]
        print(f"plain smoke run, check time without start-up: median {statistics.median(plain) * 1000:.0f} ms "
              f"of {args.runs} ({', '.join(f'{p * 1000:.0f}' for p in plain)})")
        started = time.monotonic()
        samples = soak(base + ["-q", "--soak", f"{window}/{args.every}", "--reports-dir", str(state_dir / "soak")],
                       env)
        elapsed_s = time.monotonic() - started
        results = max((state_dir / "soak").glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
        checks = json.loads(results.read_text())["checks"]
        records = [m["value"] for c in checks for m in c["measurements"] if m["measure"] == "soak_samples"]
        record_kb = len(json.dumps(records)) / 1024
    finally:
        sandbox_module.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    later = [seconds for _, seconds, _ in samples[1:]] or [samples[0][1]]
    per_sample = statistics.median(later)
    check = statistics.median(plain)
    print(f"soak {window}/{args.every} of the smoke suite: {len(samples)} samples in {elapsed_s:.0f} s")
    print(f"  RSS first sample {samples[0][2] / 1024:.1f} MiB, last sample {samples[-1][2] / 1024:.1f} MiB "
          f"({(samples[-1][2] - samples[0][2]) / 1024:+.1f} MiB); after sample 2: {samples[1][2] / 1024:.1f} MiB")
    print(f"  the sample records kept for results.json ({len(records)} soaked checks x {len(samples)} samples): "
          f"{record_kb:.0f} KiB as JSON")
    print(f"  time per sample: first {samples[0][1] * 1000:.0f} ms, median of the rest {per_sample * 1000:.0f} ms, "
          f"max {max(later) * 1000:.0f} ms; plain run's check time {check * 1000:.0f} ms; "
          f"ratio {per_sample / check:.2f}")


if __name__ == "__main__":
    main()
