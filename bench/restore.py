"""Benchmark: restoring the sandbox database by the opsproof drill vs the bare ``pg_restore`` command.

Starts its own sandbox and, ``--runs`` times each (after a warm-up), times: the bare command
(``pg_restore --exit-on-error --no-owner -d`` into a database created just before, not timed);
the drill in-process (create, fetch, restore, verify tables/row counts/invariants, drop, confirm);
and the whole ``opsproof run --suite backup -k restores`` process. Prints medians and the overhead
ratios. Usage: ``.venv/bin/python bench/restore.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsproof import sandbox as sandbox_module
from opsproof.sandbox import postgres as sandbox_pg

ROOT = Path(__file__).resolve().parent.parent
SET = "bankchain-custom"


def bare_restore(box, dump: Path) -> float:
    import psycopg

    admin = dict(host="127.0.0.1", port=box.pg_port, user=sandbox_pg.ADMIN_USER, password=box.pg_admin_password,
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_bare WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_bare")
    env = {**os.environ, "PGPASSWORD": box.pg_admin_password}
    command = ["pg_restore", "--exit-on-error", "--no-owner", "-h", "127.0.0.1", "-p", str(box.pg_port),
               "-U", sandbox_pg.ADMIN_USER, "-d", "bench_bare", str(dump)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    with psycopg.connect(**admin) as conn:
        conn.execute("DROP DATABASE bench_bare WITH (FORCE)")
    return elapsed


def drill_in_process(environment) -> float:
    from opsproof.backups import BackupProbe

    started = time.perf_counter()
    record = BackupProbe(environment.backups[SET], environment).drill()
    elapsed = time.perf_counter() - started
    if record["outcome"] != "passed" or not record["cleanup_confirmed"]:
        sys.exit(f"the drill did not pass: {record}")
    return elapsed


def drill_cli(env_file: Path, reports: Path) -> float:
    command = [str(ROOT / ".venv" / "bin" / "opsproof"), "run", "--env", str(env_file), "--suite", "backup",
               "--reports-dir", str(reports), "-k", f"restores and {SET}", "--allow-destructive", "-q"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"opsproof run failed (exit {result.returncode}):\n{result.stdout[-2000:]}")
    return elapsed


def median_of(runs: int, measure) -> float:
    measure()  # warm-up: page cache, first connections
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from opsproof.environment import load_environment

    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-bench-restore-"))
    box = sandbox_module.up(state_dir)
    try:
        env_file = state_dir / "bench.yaml"
        env_file.write_text((ROOT / "environments" / "local.yaml").read_text()
                            .replace("name: local", "name: bench").replace("../.opsproof/sandbox/vars.env", "vars.env"))
        environment = load_environment(env_file).environment
        dump = sorted(Path(box.variables["SANDBOX_BACKUP_DIR"]).glob("*.dump"))[-1]
        size_bytes = dump.stat().st_size
        bare = median_of(args.runs, lambda: bare_restore(box, dump))
        drill = median_of(args.runs, lambda: drill_in_process(environment))
        cli = median_of(args.runs, lambda: drill_cli(env_file, state_dir / "reports"))
    finally:
        sandbox_module.down(state_dir)
    print(f"sandbox database: {size_bytes} bytes custom-format dump; median of {args.runs} runs")
    print(f"bare pg_restore                      {bare * 1000:8.0f} ms")
    print(f"opsproof drill (create..verify..drop){drill * 1000:8.0f} ms   overhead ratio {drill / bare:.2f}x")
    print(f"opsproof run --suite backup (process){cli * 1000:8.0f} ms   overhead ratio {cli / bare:.2f}x")


if __name__ == "__main__":
    main()
