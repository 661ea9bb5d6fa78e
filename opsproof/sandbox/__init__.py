"""The embedded sandbox: real PostgreSQL, Redis and a demo API on free loopback ports.

``up`` records every process it starts in ``state.json`` and writes ``vars.env`` (ports and
generated passwords) where ``environments/local.yaml`` reads them; ``down`` stops exactly those
processes and removes what they wrote.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opsproof.paths import project_root
from opsproof.sandbox import postgres as pg
from opsproof.sandbox import redis as rd
from opsproof.sandbox.processes import SandboxError, alive, free_port, stop_pid, wait_for_port

STATE_FILE = "state.json"
VARS_FILE = "vars.env"


def default_state_dir() -> Path:
    return project_root() / ".opsproof" / "sandbox"


@dataclass
class Sandbox:
    state_dir: str
    pg_port: int
    pg_data_dir: str
    pg_pid: int
    pg_admin_password: str
    pg_password: str
    redis_port: int
    redis_pid: int
    redis_password: str
    api_port: int
    api_pid: int
    started_at: float = field(default_factory=time.time)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pg_dsn(self) -> str:
        return pg.dsn(self.pg_port)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def variables(self) -> dict[str, str]:
        """What local.yaml's ``${...}`` references resolve to."""
        return {
            "SANDBOX_API_URL": self.api_url,
            "SANDBOX_PG_DSN": self.pg_dsn,
            "SANDBOX_PG_PASSWORD": self.pg_password,
            "SANDBOX_PG_ADMIN_PASSWORD": self.pg_admin_password,
            "SANDBOX_REDIS_URL": self.redis_url,
            "SANDBOX_REDIS_PASSWORD": self.redis_password,
        }

    def pids(self) -> dict[str, int]:
        return {"postgres": self.pg_pid, "redis": self.redis_pid, "api": self.api_pid}


def load(state_dir: Path | None = None) -> Sandbox | None:
    path = Path(state_dir or default_state_dir()) / STATE_FILE
    if not path.exists():
        return None
    return Sandbox(**json.loads(path.read_text()))


def up(state_dir: Path | None = None) -> Sandbox:
    """Start everything (or return the running sandbox); on any failure, stop what was started."""
    state_dir = Path(state_dir or default_state_dir()).resolve()
    running = load(state_dir)
    if running and all(alive(pid) for pid in running.pids().values()):
        return running
    if running:
        down(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    started: dict = {"state_dir": str(state_dir)}
    try:
        started["pg_admin_password"] = secrets.token_urlsafe(18)
        started["pg_password"] = secrets.token_urlsafe(18)
        started["pg_port"] = free_port()
        data_dir = pg.create_cluster(state_dir, started["pg_port"], started["pg_admin_password"])
        started["pg_data_dir"] = str(data_dir)
        started["pg_pid"] = pg.start(data_dir, started["pg_port"])
        pg.seed(started["pg_port"], started["pg_admin_password"], started["pg_password"])
        started["redis_password"] = secrets.token_urlsafe(18)
        started["redis_port"] = free_port()
        started["redis_pid"] = rd.start(state_dir, started["redis_port"], started["redis_password"])
        rd.seed(started["redis_port"], started["redis_password"])
        started["api_port"] = free_port()
        started["api_pid"] = _start_api(state_dir, started)
    except BaseException:
        _stop_started(started)
        raise
    sandbox = Sandbox(**started)
    _write_private(state_dir / STATE_FILE, json.dumps(asdict(sandbox), indent=2))
    _write_private(state_dir / VARS_FILE, "".join(f"{k}={v}\n" for k, v in sandbox.variables().items()))
    return sandbox


def _start_api(state_dir: Path, started: dict) -> int:
    env = {
        **os.environ,
        "SANDBOX_PG_DSN": pg.dsn(started["pg_port"]),
        "SANDBOX_PG_PASSWORD": started["pg_password"],
        "SANDBOX_REDIS_URL": f"redis://127.0.0.1:{started['redis_port']}/0",
        "SANDBOX_REDIS_PASSWORD": started["redis_password"],
    }
    log = open(state_dir / "api.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "opsproof.sandbox.api", "--port", str(started["api_port"])],
        env=env, stdout=log, stderr=log, start_new_session=True, cwd=state_dir,
    )
    log.close()
    started["api_pid"] = process.pid
    try:
        wait_for_port(started["api_port"], 20, "the demo API", process)
    except SandboxError as error:
        tail = (state_dir / "api.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise SandboxError(f"{error}: {' '.join(tail)}") from None
    return process.pid


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _stop_started(started: dict) -> None:
    for key in ("api_pid", "redis_pid"):
        if started.get(key):
            stop_pid(started[key])
    if started.get("pg_data_dir"):
        pg.stop(Path(started["pg_data_dir"]))
        pg.remove(Path(started["pg_data_dir"]), Path(started["state_dir"]))


def down(state_dir: Path | None = None) -> list[str]:
    """Stop exactly the processes ``up`` recorded and remove the state; returns what was stopped."""
    state_dir = Path(state_dir or default_state_dir()).resolve()
    sandbox = load(state_dir)
    if sandbox is None:
        return []
    stopped = []
    for name, pid in (("api", sandbox.api_pid), ("redis", sandbox.redis_pid)):
        if alive(pid) and stop_pid(pid):
            stopped.append(f"{name} (pid {pid})")
    if alive(sandbox.pg_pid):
        pg.stop(Path(sandbox.pg_data_dir))
        if alive(sandbox.pg_pid):
            stop_pid(sandbox.pg_pid)
        stopped.append(f"postgres (pid {sandbox.pg_pid})")
    pg.remove(Path(sandbox.pg_data_dir), state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    return stopped


def status(state_dir: Path | None = None) -> dict[str, str]:
    sandbox = load(state_dir)
    if sandbox is None:
        return {}
    ports = {"postgres": sandbox.pg_port, "redis": sandbox.redis_port, "api": sandbox.api_port}
    return {
        name: f"{'running' if alive(pid) else 'stopped'} pid {pid} on 127.0.0.1:{ports[name]}"
        for name, pid in sandbox.pids().items()
    }


__all__ = ["Sandbox", "SandboxError", "default_state_dir", "down", "load", "status", "up"]
