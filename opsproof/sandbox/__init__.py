"""The embedded sandbox: real PostgreSQL, Redis and a demo API on free loopback ports.

``up`` starts each component in turn, records every process it started in ``state.json`` and
writes ``vars.env`` (ports and generated passwords) where ``environments/local.yaml`` reads them;
``down`` stops exactly those processes, in reverse order, and removes what they wrote. A component
is a function ``start(box)`` that starts its servers with ``box.add_process`` and publishes what
environments need with ``box.variables``; later areas add components without touching the others.
Each process is recorded with its identity (start time, command line), and nothing is signalled that
is not still that process: a pid reused since, or named by a stale or foreign state file, is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opsproof.paths import project_root
from opsproof.sandbox.processes import (
    LeftAlone,
    SandboxError,
    alive,
    identity,
    running,
    started_identity,
    stop_identified,
    stranger,
)

STATE_FILE = "state.json"
VARS_FILE = "vars.env"


def default_state_dir() -> Path:
    return Path(os.environ.get("OPSPROOF_SANDBOX_DIR") or project_root() / ".opsproof" / "sandbox")


@dataclass
class Sandbox:
    """What ``up`` started: processes (name -> pid, port, how to stop), variables, private details."""

    state_dir: str
    processes: dict[str, dict] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)

    def add_process(self, name: str, pid: int, port: int, **how_to_stop) -> None:
        """Record a started server and its identity; ``data_dir`` marks a PostgreSQL cluster, ``cleanup``
        lists paths to remove."""
        self.processes[name] = {"pid": pid, "port": port, "identity": started_identity(pid), **how_to_stop}
        self.save()

    def is_up(self) -> bool:
        """Every recorded process is still the one started."""
        return all(running(name, record) for name, record in self.processes.items())

    def save(self) -> None:
        state_dir = Path(self.state_dir)
        _write_private(state_dir / STATE_FILE, json.dumps(asdict(self), indent=2))
        _write_private(state_dir / VARS_FILE, "".join(f"{k}={v}\n" for k, v in self.variables.items()))

    def pids(self) -> dict[str, int]:
        return {name: p["pid"] for name, p in self.processes.items()}

    def port(self, name: str) -> int:
        return self.processes[name]["port"]

    # the values tests and the benchmark reach for most
    api_url = property(lambda self: self.variables["SANDBOX_API_URL"])
    pg_dsn = property(lambda self: self.variables["SANDBOX_PG_DSN"])
    pg_password = property(lambda self: self.variables["SANDBOX_PG_PASSWORD"])
    pg_admin_password = property(lambda self: self.variables["SANDBOX_PG_ADMIN_PASSWORD"])
    redis_url = property(lambda self: self.variables["SANDBOX_REDIS_URL"])
    redis_password = property(lambda self: self.variables["SANDBOX_REDIS_PASSWORD"])
    pg_port = property(lambda self: self.port("postgres"))
    pg_pid = property(lambda self: self.processes["postgres"]["pid"])
    pg_data_dir = property(lambda self: self.processes["postgres"]["data_dir"])
    redis_port = property(lambda self: self.port("redis"))
    api_port = property(lambda self: self.port("api"))


def components() -> list[tuple[str, Callable[[Sandbox], None]]]:
    """The components ``up`` starts, in order (later ones may use earlier ones' variables)."""
    from opsproof.sandbox import api, backups, https, mariadb, postgres, redis

    return [("postgres", postgres.component), ("redis", redis.component), ("mariadb", mariadb.component),
            ("backups", backups.component), ("api", api.component), ("https", https.component)]


def load(state_dir: Path | None = None) -> Sandbox | None:
    path = Path(state_dir or default_state_dir()) / STATE_FILE
    if not path.exists():
        return None
    try:
        return Sandbox(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise SandboxError(f"{path} is not a sandbox state file ({error}); stop its processes and remove it") from None


def up(state_dir: Path | None = None) -> Sandbox:
    """Start everything (or return the running sandbox); on any failure, stop what was started."""
    state_dir = Path(state_dir or default_state_dir()).resolve()
    running = load(state_dir)
    wanted = [name for name, _ in components()]
    if running and running.details.get("components") == wanted and running.is_up():
        return running
    if running:  # stopped, half-dead, or started by an older opsproof with other components
        down(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    box = Sandbox(state_dir=str(state_dir), details={"components": wanted})
    box.variables["SANDBOX_STATE_DIR"] = str(state_dir)  # where drills find the processes to take down
    try:
        for _, start in components():
            start(box)
        box.save()
    except BaseException:
        _stop_all(box)
        raise
    return box


def backup(state_dir: Path | None = None) -> str:
    """Take another round of backups of the running sandbox (its nightly job); returns the round's stamp."""
    from opsproof.sandbox import backups

    box = load(state_dir)
    if box is None or not box.is_up():
        raise SandboxError("the sandbox is not running: start it with `opsproof sandbox up`")
    return backups.take_round(box)


def backup_rounds(state_dir: Path | None = None) -> list[str]:
    """The stamps of the backup rounds the sandbox keeps, oldest first."""
    from opsproof.sandbox import backups

    return backups.rounds(Path(state_dir or default_state_dir()).resolve() / "backups")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def stop_process(name: str, record: dict) -> bool:
    """Stop one recorded process (a PostgreSQL cluster through pg_ctl) if it is still the one the sandbox
    started; True if it was running. Raises LeftAlone, signalling nothing, when its pid names another."""
    from opsproof.sandbox import postgres

    reason = stranger(name, record)
    if reason:
        raise LeftAlone(f"{name} (pid {record['pid']}): {reason}")
    recorded = record.get("identity") or identity(record["pid"])  # an older state: the process just recognised
    if recorded is None or not alive(record["pid"]):
        return False
    if record.get("data_dir"):
        postgres.stop(Path(record["data_dir"]))
    stop_identified(recorded)
    return True


def _stop_all(box: Sandbox) -> tuple[list[str], list[str]]:
    """Stop every recorded process, last started first; returns what was stopped and what was left alone."""
    stopped, left_alone = [], []
    for name, record in reversed(list(box.processes.items())):
        try:
            if stop_process(name, record):
                stopped.append(f"{name} (pid {record['pid']})")
        except LeftAlone as why:
            left_alone.append(str(why))
        for path in record.get("cleanup", []):  # the sandbox's own files: a stranger under the pid never used them
            shutil.rmtree(path, ignore_errors=True)
    return stopped, left_alone


def down(state_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Stop exactly the processes ``up`` recorded and remove the state; returns what was stopped and what
    was left alone (a pid that now names another process)."""
    state_dir = Path(state_dir or default_state_dir()).resolve()
    box = load(state_dir)
    if box is None:
        return [], []
    stopped = _stop_all(box)
    shutil.rmtree(state_dir, ignore_errors=True)
    return stopped


def status(state_dir: Path | None = None) -> dict[str, str]:
    box = load(state_dir)
    if box is None:
        return {}
    lines = {}
    for name, p in box.processes.items():
        reason = stranger(name, p)
        state = "running" if alive(p["pid"]) and not reason else "stopped"
        note = f" (not the sandbox's: {reason})" if reason else ""
        lines[name] = f"{state} pid {p['pid']} on 127.0.0.1:{p['port']}{note}"
    return lines


__all__ = ["LeftAlone", "Sandbox", "SandboxError", "backup", "backup_rounds", "default_state_dir", "down", "load",
           "status", "stop_process", "up"]
