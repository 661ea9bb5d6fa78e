"""Benchmark: the failover drill's own overhead, beyond the time its steps take.

Starts its own sandbox and, ``--runs`` times (after a warm-up): a fresh streaming replica of its primary
(pg_basebackup, not timed), then the failover drill of tests/test_dr_failover.py in-process (marker
written, primary stopped, replica promoted, API repointed, healthy, verified by the API's smoke checks and
two invariants, marker read; rollback: replica stopped, primary started, API repointed back). Reports,
as medians: the whole drill, its scenario's steps, the drill's own measuring steps (marker write and read,
verification), and the runner's overhead: the whole drill minus every timed step and rollback step.
Usage: ``.venv/bin/python bench/dr_failover.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from opsproof import sandbox as sandbox_module
from opsproof.processes import free_port, unprivileged_user
from opsproof.sandbox import postgres as sandbox_pg

AS_SERVER_USER = "runuser -u postgres -- " if unprivileged_user() else ""
OWN_STEPS = ("measure_rpo_before", "verify", "measure_rpo_after")


def standby(box) -> tuple[Path, int]:
    """A streaming replica of the sandbox's primary: its data directory and port."""
    import psycopg

    parent = Path(tempfile.mkdtemp(prefix="opsproof-bench-standby-"))
    if unprivileged_user():
        os.chmod(parent, 0o755)
        os.chown(parent, unprivileged_user().pw_uid, unprivileged_user().pw_gid)
    data_dir, port = parent / "data", free_port()
    conninfo = (f"host=127.0.0.1 port={box.pg_port} user={sandbox_pg.ADMIN_USER} password={box.pg_admin_password} "
                "application_name=bench_standby")
    result = sandbox_pg._as_server_user([str(sandbox_pg.bindir() / "pg_basebackup"), "-d", conninfo, "-D",
                                         str(data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"])
    if result.returncode != 0:
        sys.exit(f"pg_basebackup failed: {result.stderr}")
    sandbox_pg.start(data_dir, port)
    with psycopg.connect(sandbox_pg.dsn(box.pg_port, user=sandbox_pg.ADMIN_USER), password=box.pg_admin_password,
                         autocommit=True) as conn:
        while not conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()[0]:
            time.sleep(0.1)
    return data_dir, port


def environment(box, data_dir: Path, port: int) -> dict:
    pg_ctl = f"{AS_SERVER_USER}{sandbox_pg.bindir() / 'pg_ctl'}"
    repoint = "curl -fsS --max-time 5 -X POST --data '{}' " + f"{box.api_url}/_sandbox/database"
    admin = f"postgresql://{sandbox_pg.ADMIN_USER}@127.0.0.1:{port}/{sandbox_pg.DATABASE}"
    run = {"type": "run", "timeout": "30s"}
    return {"name": "bench", "tier": "sandbox",
            "http": {"api": {"url": box.api_url, "health": {"path": "/health", "json": {"status": "healthy"}}}},
            "postgres": {"main": {"dsn": box.pg_dsn, "password": box.pg_password},
                         "standby": {"dsn": admin, "password": box.pg_admin_password}},
            "dr": {"failover": {
                "sandbox_dir": box.state_dir, "acts_on": ["postgres.main", "postgres.standby", "http.api"],
                "outage_starts_at": "stop_primary", "rto": "1m", "rpo": "0s",
                "rpo_measure": {"marker": {"write": "postgres.main", "read": "postgres.standby"}},
                "steps": [
                    {**run, "name": "stop_primary", "command": f"{pg_ctl} -D {box.pg_data_dir} -m fast -w stop"},
                    {"name": "promote", "type": "promote", "target": "postgres.standby", "timeout": "30s"},
                    {**run, "name": "repoint", "command": repoint.replace("{}", json.dumps(
                        {"dsn": sandbox_pg.dsn(port)}))},
                    {"name": "healthy", "type": "wait_healthy", "targets": ["http.api"], "timeout": "30s",
                     "every": "0.1s"}],
                "verify": {"suite": "smoke", "targets": ["http.api"], "invariants": {
                    "users": {"target": "postgres.standby", "sql": "SELECT count(*) FROM users", "min": 500},
                    "balances": {"target": "postgres.standby", "sql": "SELECT count(*) FROM wallets "
                                                                      "WHERE balance < 0", "max": 0}}},
                "rollback": [
                    {**run, "name": "stop_replica", "command": f"{pg_ctl} -D {data_dir} -m fast -w stop"},
                    {"name": "start_primary", "type": "sandbox", "action": "start_database",
                     "target": "postgres.main", "timeout": "1m"},
                    {**run, "name": "repoint_back", "command": repoint.replace("{}", json.dumps(
                        {"dsn": sandbox_pg.dsn(box.pg_port)}))}]}}}


def one_drill(box, workdir: Path) -> dict:
    from opsproof.drills.dr import DrDrill
    from opsproof.environment import load_environment

    data_dir, port = standby(box)
    try:
        env_file = workdir / "bench.yaml"
        env_file.write_text(yaml.safe_dump(environment(box, data_dir, port), sort_keys=False))
        loaded = load_environment(env_file).environment
        started = time.perf_counter()
        record = DrDrill(loaded.dr["failover"], loaded).run(env_file, "bench")
        total = time.perf_counter() - started
    finally:
        sandbox_pg.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    if record.outcome != "passed":
        sys.exit(f"the drill did not pass: {record.failed_step}: {record.error}; {record.cleanup_left}")
    own = sum(s.duration_s for s in record.steps if s.name in OWN_STEPS)
    steps = sum(s.duration_s for s in [*record.steps, *record.rollback] if s.name not in OWN_STEPS)
    marker = sum(s.duration_s for s in record.steps if s.name.startswith("measure_rpo"))
    return {"total": total, "steps": steps, "own": own, "marker": marker, "runner": total - steps - own,
            "rto": record.rto_achieved_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="opsproof-bench-dr-"))
    box = sandbox_module.up(workdir / "sandbox")
    try:
        one_drill(box, workdir)  # warm-up: page cache, imports, first connections
        runs = [one_drill(box, workdir) for _ in range(args.runs)]
    finally:
        sandbox_module.down(workdir / "sandbox")
        shutil.rmtree(workdir, ignore_errors=True)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"failover drill on the sandbox, median of {args.runs} runs")
    print(f"whole drill (steps, verification, rollback)   {median['total'] * 1000:8.0f} ms   RTO {median['rto']:.2f} s")
    print(f"  the scenario's steps and rollback            {median['steps'] * 1000:8.0f} ms")
    print(f"  marker written and read (2 steps)            {median['marker'] * 1000:8.0f} ms")
    print(f"  verification (smoke checks run, invariants)  {(median['own'] - median['marker']) * 1000:8.0f} ms")
    print(f"  the runner's own overhead (total - steps)    {median['runner'] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
