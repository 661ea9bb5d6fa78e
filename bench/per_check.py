"""Benchmark: what one more check costs, at 10, 100, 1000 and 5000 checks of one cheap kind.

Each check is a ``tcp`` target's connect check (``nc -z``) against a listener this benchmark runs on
loopback, in ``opsproof run --suite nightly`` with all three reports and the history record. The runs
of every size are interleaved, ``--runs`` times after a warm-up each. The table shows the median wall
time, the cost per check above the smallest run (``(t(N) - t(10)) / (N - 10)``) without the probes'
own connect time (read from results.json), the step from the size before, the CPU time (user + system;
per check above the smallest run, probes included) and the run's peak RSS.
Linear growth keeps the per-check columns flat. Usage: ``.venv/bin/python bench/per_check.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import yaml

from timing import Side, before, compare, users_env

ROOT = Path(__file__).resolve().parent.parent


def listen() -> int:
    """A loopback port that accepts (and closes) every connection, for as long as the benchmark runs."""
    server = socket.create_server(("127.0.0.1", 0), backlog=4096)

    def serve():
        while True:
            connection, _ = server.accept()
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def environment(directory: Path, checks: int, port: int) -> Path:
    path = directory / f"tcp-{checks}.yaml"
    targets = {f"port{i:05d}": {"host": "127.0.0.1", "port": port, "timeout_s": 5} for i in range(checks)}
    path.write_text(yaml.safe_dump({"name": f"tcp-{checks}", "tier": "sandbox", "tcp": targets}))
    return path


def connect_ms(reports: Path, env_name: str) -> list[float]:
    """The probes' own connect times of the newest run (its results.json), per check."""
    newest = max((reports / env_name).glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    checks = json.loads(newest.read_text())["checks"]
    return [m["value"] for c in checks for m in c["measurements"] if m["measure"] == "connect_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--before", metavar="DIR", help="also time this checkout of opsproof, side by side")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    port = listen()
    work = Path(tempfile.mkdtemp(prefix="opsproof-bench-per-check-"))
    opsproof = str(Path(sys.executable).parent / "opsproof")
    sides = []
    labels = [""] + ([" before"] if args.before else [])
    for checks in sizes:
        for label in labels:  # each side its own reports: its probes' connect times are its own
            command = [opsproof, "run", "--env", str(environment(work, checks, port)), "--suite", "nightly",
                       "--reports-dir", str(work / f"reports{label.replace(' ', '-')}"), "-q"]
            sides.append(Side(f"{checks}{label}", *(before(command, args.before) if label else (command, users_env()))))
    compare(sides, args.runs, ROOT)
    for label in labels:
        reports = work / f"reports{label.replace(' ', '-')}"
        network = {checks: statistics.mean(connect_ms(reports, f"tcp-{checks}")) for checks in sizes}
        rows = [(checks, next(s for s in sides if s.label == f"{checks}{label}")) for checks in sizes]
        print(f"\nopsproof{label}: tcp connect checks, --suite nightly, all 3 reports + history, "
              f"median of {args.runs} runs (interleaved):")
        print(f"{'checks':>7} {'wall ms':>9} {'ms/check':>9} {'step':>7} {'cpu ms':>8} {'cpu ms/check':>13} "
              f"{'probe ms':>9} {'peak RSS MB':>12}")
        (small, small_side), previous = rows[0], rows[0]
        for checks, side in rows:
            probe = network[checks]
            per_check = step = cpu_per_check = float("nan")
            if checks > small:
                per_check = (side.median_s - small_side.median_s) * 1000 / (checks - small) - probe
                step = (side.median_s - previous[1].median_s) * 1000 / (checks - previous[0]) - probe
                cpu_per_check = (side.median_cpu_s - small_side.median_cpu_s) * 1000 / (checks - small)
            print(f"{checks:>7} {side.median_s * 1000:>9.0f} {per_check:>9.2f} {step:>7.2f} "
                  f"{side.median_cpu_s * 1000:>8.0f} {cpu_per_check:>13.2f} {probe:>9.2f} {side.peak_rss_mb:>12.0f}")
            previous = (checks, side)

if __name__ == "__main__":
    main()
