"""Benchmark: restoring the sandbox database by the opsproof drill vs the bare commands.

Starts its own sandbox and, ``--runs`` times each (after a warm-up), times: the bare command
(``pg_restore --exit-on-error --no-owner -d`` into a database created just before, not timed);
the drill in-process (create, fetch, restore, verify tables/row counts/invariants, drop, confirm);
and the whole ``opsproof run --suite backup -k restores`` process. For the physical drill: the bare
copy of the latest base backup and ``pg_ctl start -w`` (stop and removal not timed) vs the drill
of ``bankchain-base`` (restore, start, recovery ended, verify, stop, remove, confirm).
Prints medians and the overhead ratios. Usage: ``.venv/bin/python bench/restore.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsproof import sandbox as sandbox_module
from opsproof.processes import free_port, give_to_unprivileged, run_unprivileged
from opsproof.sandbox import postgres as sandbox_pg

ROOT = Path(__file__).resolve().parent.parent
SET = "bankchain-custom"
PHYSICAL_SET = "bankchain-base"


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


def bare_physical_restore(base_backup: Path, scratch: Path) -> float:
    """What an operator types: copy the base backup, start it, wait until it accepts connections."""
    pgdata, socket_dir = scratch / "pgdata", scratch / "socket"
    shutil.rmtree(scratch, ignore_errors=True)
    socket_dir.mkdir(parents=True)
    os.chmod(scratch, 0o755)
    started = time.perf_counter()
    shutil.copytree(base_backup, pgdata, symlinks=True)
    os.chmod(pgdata, 0o700)
    give_to_unprivileged(socket_dir)
    give_to_unprivileged(pgdata)
    options = f"-c port={free_port()} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} " \
              "-c archive_mode=off"
    pg_ctl = str(sandbox_pg.bindir() / "pg_ctl")
    result = run_unprivileged([pg_ctl, "-D", str(pgdata), "-l", str(socket_dir / "log"), "-w", "-t", "120",
                               "-o", options, "start"], timeout_s=130)
    elapsed = time.perf_counter() - started
    run_unprivileged([pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop"], timeout_s=60)
    shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        sys.exit(f"bare pg_ctl start failed: {result.stdout}{result.stderr}")
    return elapsed


def drill_in_process(environment, name: str = SET) -> float:
    from opsproof.backups import BackupProbe

    started = time.perf_counter()
    record = BackupProbe(environment.backups[name], environment).drill()
    elapsed = time.perf_counter() - started
    if record.outcome != "passed" or not record.cleanup_confirmed:
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
        base_backup = sorted(p for p in Path(box.variables["SANDBOX_BACKUP_DIR"]).glob("base-*") if p.is_dir())[-1]
        scratch = Path(tempfile.mkdtemp(prefix="opsproof-bench-physical-"))
        os.chmod(scratch, 0o755)  # the server user traverses it
        bare_physical = median_of(args.runs, lambda: bare_physical_restore(base_backup, scratch / "bare"))
        scratch.rmdir()
        physical = median_of(args.runs, lambda: drill_in_process(environment, PHYSICAL_SET))
    finally:
        sandbox_module.down(state_dir)
    print(f"sandbox database: {size_bytes} bytes custom-format dump; median of {args.runs} runs")
    print(f"bare pg_restore                      {bare * 1000:8.0f} ms")
    print(f"opsproof drill (create..verify..drop){drill * 1000:8.0f} ms   overhead ratio {drill / bare:.2f}x")
    print(f"opsproof run --suite backup (process){cli * 1000:8.0f} ms   overhead ratio {cli / bare:.2f}x")
    print(f"bare base backup copy + pg_ctl start {bare_physical * 1000:8.0f} ms")
    print(f"opsproof physical drill (..confirm)  {physical * 1000:8.0f} ms   overhead ratio "
          f"{physical / bare_physical:.2f}x")


if __name__ == "__main__":
    main()
