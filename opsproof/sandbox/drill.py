"""The sandbox's own DR actions, as ``sandbox`` steps of a scenario (opsproof.drills finds them by name).

``stop_api``, ``stop_database``, ``lose_cache`` (stopped, its RDB file removed) take the sandbox down;
``start_database`` starts its recorded cluster again; ``fresh_database`` starts an empty cluster (the
admin and application roles, the empty database) on the database's port; ``restore_database`` does that
and restores the latest ``*.dump`` of the sandbox's backups (or ``backup_dir``) into it; ``start_cache``
and ``start_api`` bring those back. Every process an action stops, replaces or starts is recorded in the
sandbox's state.json, so ``opsproof sandbox down`` stops and removes everything whatever step failed.
One drill at a time acts on a sandbox (a lock beside its state.json, held until the drill ends).
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from opsproof.drills.runner import StepFailed
from opsproof.errors import first_line

LOCK_WAIT_S = 600


def _sandbox(context, deadline: float | None):
    """The sandbox the scenario's ``sandbox_dir`` names, locked for this drill (released when it ends); another
    drill's lock is waited for until the step's deadline."""
    from filelock import FileLock, Timeout

    from opsproof import sandbox

    state_dir = Path(context.scenario.sandbox_dir)
    box = sandbox.load(state_dir) if state_dir.is_dir() else None
    if box is None or "postgres" not in box.processes:
        raise StepFailed(f"no sandbox at {state_dir}: run `opsproof sandbox up`")
    lock = FileLock(str(state_dir / "dr.lock"))
    try:
        lock.acquire(timeout=LOCK_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic()))
    except Timeout:
        raise StepFailed(f"another drill holds {state_dir / 'dr.lock'}") from None
    context.closers.append(lock.release)
    return box


def step(step, context):
    """The ``sandbox`` step's action: one of ACTIONS on the scenario's sandbox."""
    def do(deadline) -> str:
        box = context.once("sandbox", lambda: _sandbox(context, deadline))
        return ACTIONS[step.action](box, step)

    return do


def _stop(box, name: str) -> str:
    from opsproof.sandbox import LeftAlone, stop_process

    process = box.processes.get(name)
    if process is None:
        raise StepFailed(f"the sandbox has no {name} process")
    try:
        stopped = stop_process(name, process)
    except LeftAlone as error:
        raise StepFailed(f"left alone {error}") from None
    return f"{name} (pid {process['pid']}) {'stopped' if stopped else 'was not running'}"


def lose_cache(box, step) -> str:
    stopped = _stop(box, "redis")
    (Path(box.state_dir) / "redis" / "dump.rdb").unlink(missing_ok=True)
    return f"{stopped}; dump.rdb removed"


def start_database(box, step) -> str:
    """Start the recorded cluster again (after a failover drill stopped it)."""
    from opsproof.sandbox import postgres
    from opsproof.sandbox.processes import SandboxError, running

    record = box.processes["postgres"]
    if running("postgres", record):
        return f"postgres (pid {record['pid']}) already running"
    try:
        pid = postgres.start(Path(record["data_dir"]), record["port"])
    except SandboxError as error:
        raise StepFailed(str(error)) from None
    box.add_process("postgres", pid, record["port"], data_dir=record["data_dir"], cleanup=record.get("cleanup", []))
    return f"postgres (pid {pid}) on 127.0.0.1:{record['port']}"


def fresh_database(box, step) -> str:
    """An empty cluster on the database's port: the admin role, the application role and its empty database."""
    import psycopg
    from psycopg import sql

    from opsproof.sandbox import postgres
    from opsproof.sandbox.processes import running

    old = box.processes["postgres"]
    if running("postgres", old):
        raise StepFailed("the database is still running: stop it first (stop_database)")
    base = Path(box.state_dir) / f"dr-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    base.mkdir()
    data_dir = postgres.create_cluster(base, old["port"], box.pg_admin_password)
    try:
        pid = postgres.start(data_dir, old["port"])
    except BaseException:
        postgres.remove(data_dir, base)
        raise
    # the stopped cluster's files stay (evidence) and go at sandbox down, with the new cluster's
    box.add_process("postgres", pid, old["port"], data_dir=str(data_dir),
                    cleanup=[str(data_dir.parent), *old.get("cleanup", [])])
    admin = dict(host="127.0.0.1", port=old["port"], user=postgres.ADMIN_USER, password=box.pg_admin_password,
                 connect_timeout=5, dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        app = sql.Identifier(postgres.APP_USER)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(app, box.pg_password))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(postgres.DATABASE), app))
        conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(app))
    return f"fresh PostgreSQL cluster {data_dir} on 127.0.0.1:{old['port']}"


def restore_database(box, step) -> str:
    """A fresh cluster, then ``pg_restore`` of the latest ``*.dump``, its tables granted to the application."""
    from opsproof.sandbox import postgres

    directory = Path(step.backup_dir or box.variables.get("SANDBOX_BACKUP_DIR") or "")
    dumps = sorted(directory.glob("*.dump"), key=lambda p: p.stat().st_mtime) if directory.is_dir() else []
    if not dumps:
        raise StepFailed(f"no *.dump backup in {directory}")
    fresh = fresh_database(box, step)
    env = {**os.environ, "PGPASSWORD": box.pg_admin_password, "PGCONNECT_TIMEOUT": "5"}
    connect = ["-h", "127.0.0.1", "-p", str(box.pg_port), "-U", postgres.ADMIN_USER, "-d", postgres.DATABASE]
    result = subprocess.run(["pg_restore", "--exit-on-error", *connect, str(dumps[-1])], env=env, capture_output=True,
                            text=True, timeout=max(1.0, step.timeout))
    if result.returncode != 0:
        raise StepFailed(f"pg_restore of {dumps[-1].name} failed: {first_line(Exception(result.stderr))}",
                         result.stderr)
    grant = (f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {postgres.APP_USER}; "
             f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {postgres.APP_USER}")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *connect, "-c", grant], env=env, check=True,
                   capture_output=True, timeout=30)  # a dump restored as the admin: the application must reach it
    return f"{fresh}; {dumps[-1].name} restored"


def start_cache(box, step) -> str:
    from opsproof.sandbox import redis

    port = box.port("redis")
    pid = redis.start(Path(box.state_dir), port, box.redis_password)
    box.add_process("redis", pid, port)
    return f"redis (pid {pid}) on 127.0.0.1:{port}, empty"


def start_api(box, step) -> str:
    from opsproof.sandbox import api
    from opsproof.sandbox.processes import SandboxError

    try:
        pid = api.start(box, box.port("api"))
    except SandboxError as error:
        raise StepFailed(str(error)) from None
    return f"api (pid {pid}) on 127.0.0.1:{box.port('api')}"


ACTIONS = {
    "stop_api": lambda box, step: _stop(box, "api"),
    "stop_database": lambda box, step: _stop(box, "postgres"),
    "lose_cache": lose_cache,
    "start_database": start_database,
    "fresh_database": fresh_database,
    "restore_database": restore_database,
    "start_cache": start_cache,
    "start_api": start_api,
}
