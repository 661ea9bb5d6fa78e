"""Benchmark: the daily check's import budget, ``python -X importtime`` of ``opsproof run --suite smoke``.

Runs the smoke run of ``bench/daily-check.yaml`` ``--runs`` times with ``PYTHONPROFILEIMPORTTIME`` (and
``-s``, so pytest's capture does not swallow what is imported while checks run), sums each run's
self times by top-level package and prints the median per package, largest first, beside the
same for ``--before DIR``. importtime's own bookkeeping inflates the totals; compare sides, not
with wall times.
Usage: ``.venv/bin/python bench/imports.py [--runs 5] [--sandbox DIR] [--before DIR]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from timing import before, sandbox, users_env

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def budget(command: list[str], env: dict) -> Counter:
    """Self time per top-level package (µs) of one run."""
    done = subprocess.run(command, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    spent: Counter = Counter()
    for self_us, module in LINE.findall(done.stderr):
        spent[module.split(".")[0]] += int(self_us)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--sandbox", metavar="DIR", help="measure against this sandbox (started if down, left up)")
    parser.add_argument("--before", metavar="DIR", help="also measure this checkout of opsproof, side by side")
    args = parser.parse_args()
    with sandbox(args.sandbox, "opsproof-bench-imports-") as (_, state_dir):
        env_file = state_dir / "daily-check.yaml"
        shutil.copyfile(ROOT / "bench" / "daily-check.yaml", env_file)
        command = [str(Path(sys.executable).parent / "opsproof"), "run", "--env", str(env_file), "--suite", "smoke",
                   "--reports-dir", str(state_dir / "reports"), "-q", "-s"]
        sides = {"now": (command, users_env())}
        if args.before:
            sides["before"] = before(command, args.before)
        runs: dict[str, list[Counter]] = {label: [] for label in sides}
        for _ in range(args.runs):  # interleaved, as every benchmark here
            for label, (cmd, env) in sides.items():
                runs[label].append(budget(cmd, env))
    medians = {label: {pkg: statistics.median(r[pkg] for r in spent) for pkg in set().union(*spent)}
               for label, spent in runs.items()}
    totals = {label: statistics.median(sum(r.values()) for r in spent) for label, spent in runs.items()}
    print(f"import self time by top-level package, median of {args.runs} smoke runs (ms):")
    print(f"  {'package':24}" + "".join(f"{label:>10}" for label in sides))
    print(f"  {'(all)':24}" + "".join(f"{totals[label] / 1000:10.1f}" for label in sides))
    for pkg in sorted(medians["now"] | medians.get("before", {}), key=lambda p: -max(
            m.get(p, 0) for m in medians.values()))[:args.top]:
        print(f"  {pkg:24}" + "".join(f"{medians[label].get(pkg, 0) / 1000:10.1f}" for label in sides))


if __name__ == "__main__":
    main()
