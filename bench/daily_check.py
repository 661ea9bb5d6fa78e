"""Benchmark: the runbooks' daily health check as a shell script vs as `opsproof run --suite smoke`.

Starts its own sandbox, runs the two sides ``--runs`` times each, interleaved (a warm-up run of each
first), and prints both median wall times, the ratio and the opsproof run's peak RSS; beside them, the
floor: Python importing pytest and the three clients the probes need, and nothing else.
Usage: ``.venv/bin/python bench/daily_check.py [--runs 11]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from opsproof.sandbox import postgres as sandbox_pg
from timing import Side, before, compare, sandbox, users_env

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--sandbox", metavar="DIR", help="measure against this sandbox (started if down, left up)")
    parser.add_argument("--before", metavar="DIR", help="also time this checkout of opsproof (git worktree or "
                        "archive of another revision), run with this venv, side by side")
    args = parser.parse_args()
    for tool in ("curl", "jq", "psql", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the shell baseline (make bench installs it)")
    with sandbox(args.sandbox, "opsproof-bench-") as (box, state_dir):
        env_file = state_dir / "daily-check.yaml"  # beside the sandbox's vars.env, which it reads
        shutil.copyfile(ROOT / "bench" / "daily-check.yaml", env_file)
        shell_env = {
            **os.environ, "API_URL": box.api_url, "PGHOST": "127.0.0.1", "PGPORT": str(box.pg_port),
            "PGUSER": sandbox_pg.APP_USER, "PGDATABASE": sandbox_pg.DATABASE, "PGPASSWORD": box.pg_password,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(box.redis_port), "REDISCLI_AUTH": box.redis_password,
        }
        shell = Side("shell script", ["bash", str(ROOT / "bench" / "runbook-daily-check.sh")], shell_env,
                     failure_word="FAILED")
        opsproof = Side("opsproof smoke", [str(Path(sys.executable).parent / "opsproof"), "run", "--env",
                                           str(env_file), "--suite", "smoke", "--reports-dir",
                                           str(state_dir / "reports"), "-q"], users_env())
        # the floor: the runner and the three clients the probes need, imported and nothing done
        floor = Side("import floor", [sys.executable, "-c", "import pytest, psycopg, redis, httpx"], users_env())
        sides = [shell, opsproof, floor]
        if args.before:
            sides.append(Side("opsproof before", *before(opsproof.command, args.before)))
        compare(sides, args.runs, ROOT)
    print(f"daily health check, median of {args.runs} runs each, interleaved, against the sandbox:")
    print(f"  {'':50} {'wall ms':>8} {'cpu ms':>8} {'peak RSS':>9}")
    rows = [("shell (curl, psql, redis-cli, one after another)", shell),
            ("opsproof run --suite smoke (with all 3 reports)", opsproof),
            ("python: import pytest, psycopg, redis, httpx", floor)]
    if args.before:
        rows.append((f"opsproof from {args.before}", sides[3]))
    for label, side in rows:
        print(f"  {label:50} {side.median_s * 1000:8.0f} {side.median_cpu_s * 1000:8.0f} {side.peak_rss_mb:6.0f} MB")
    for label, side in rows[1:]:
        print(f"  ratio {label.split(' (')[0]} / shell: wall {side.median_s / shell.median_s:.2f}, "
              f"cpu {side.median_cpu_s / shell.median_cpu_s:.2f}")

if __name__ == "__main__":
    main()
