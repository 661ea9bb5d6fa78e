"""One run at a time: a lock per environment and suite, held for the run, naming its holder when refused.

Every run takes the environment's lock shared and its suite's lock exclusively; a destructive run (a
drill, ``--allow-destructive``) and ``opsproof prune`` take the environment's lock exclusively, so
nothing else of that environment runs beside them. The locks are kernel locks on files beside the
history (filelock: ``flock`` for the suite, SQLite's for the shared/exclusive environment lock), so a
killed holder's lock is free at once; the holder's identity (pid, host, start time, command) is kept in
a ``.holder.json`` beside each lock, which is how a refusal names the holder and how a later run knows
it took over from a run that ended without releasing.

>>> lock = RunLock(directory, "staging", "nightly")
>>> lock.acquire(wait_s=0)        # RunLocked("... held by pid 4242 on host runner-1, started ...")
>>> lock.release()
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, ReadWriteLock, Timeout

from opsproof.processes import identity, same_process

POLL_S = 0.2
EXIT_LOCKED = 3  # the exit code of a run (or prune) refused the lock


class RunLocked(Exception):
    """Another run holds the lock; the message names it."""


class RunLock:
    def __init__(self, directory: Path, environment: str, suite: str, exclusive: bool = False):
        self.directory, self.environment, self.suite, self.exclusive = Path(directory), environment, suite, exclusive
        self.directory.mkdir(parents=True, exist_ok=True)
        self._env = ReadWriteLock(self.directory / f"run-{environment}.lock", is_singleton=False)
        self._suite = FileLock(self.directory / f"run-{environment}-{suite}.lock", is_singleton=False)
        self._holder: Path | None = None
        self.took_over: list[str] = []  # holders that ended without releasing, named when their lock is taken

    @property
    def what(self) -> str:
        return f"environment {self.environment}" + ("" if self.exclusive else f", suite {self.suite}")

    def acquire(self, wait_s: float = 0.0, waiting=None) -> None:
        """Take the locks within ``wait_s`` seconds, else raise ``RunLocked`` naming the holder(s).
        ``waiting(holders)`` is told once when the run has to wait."""
        deadline = time.monotonic() + wait_s

        def busy() -> None:
            nonlocal waiting
            if waiting is not None:
                waiting("; ".join(describe(h) for h in self._holders()) or "a holder that left no name")
                waiting = None

        take_env = self._env.acquire_write if self.exclusive else self._env.acquire_read
        if not _within(take_env, deadline, busy):
            raise RunLocked(self._refusal(wait_s))
        try:
            if not self.exclusive and not _within(self._suite.acquire, deadline, busy):
                raise RunLocked(self._refusal(wait_s))
        except BaseException:  # refused, or Ctrl-C while waiting: let go of the environment's lock too
            self._env.release()
            raise
        self._holder = self._holder_file(self.suite if not self.exclusive else None)
        previous = _read(self._holder)
        if previous and not _is_me(previous):
            self.took_over.append(describe(previous))
        _write(self._holder, {**(identity(os.getpid()) or {"pid": os.getpid()}), "host": socket.gethostname(),
                              "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "environment": self.environment, "suite": self.suite, "exclusive": self.exclusive})

    def release(self) -> None:
        if self._holder is None:
            return
        self._holder.unlink(missing_ok=True)
        self._holder = None
        if not self.exclusive:
            self._suite.release()
        self._env.release()

    def _holder_file(self, suite: str | None) -> Path:
        return self.directory / (f"run-{self.environment}-{suite}.holder.json" if suite
                                 else f"run-{self.environment}.holder.json")

    def _refusal(self, wait_s: float) -> str:
        named = "; ".join(describe(h) for h in self._holders()) or "a holder that left no name"
        return (f"{self.what} is locked by another run: {named}; gave up after waiting {wait_s:g} s "
                f"(--wait-lock)")

    def _holders(self) -> list[dict]:
        """Who may hold what we were refused: an exclusive run, else the suite's run (or, for an exclusive
        lock, every suite's run)."""
        exclusive = _read(self._holder_file(None))
        if exclusive and _may_hold(exclusive):
            return [exclusive]
        suites = [self._holder_file(self.suite)] if not self.exclusive else \
            sorted(self.directory.glob(f"run-{self.environment}-*.holder.json"))
        return [h for h in map(_read, suites) if h and _may_hold(h)]


def wait_seconds(value: str) -> float:
    """``--wait-lock``: a duration (``30s``, ``5m``) or plain seconds; a ValueError names the value."""
    from opsproof.environment.base import parse_duration

    try:
        return float(value) if value.replace(".", "", 1).isdigit() else parse_duration(value)
    except ValueError:
        raise ValueError(f"--wait-lock: {value!r} is not a duration like 30s, 5m or 1h") from None


def describe(holder: dict) -> str:
    command = " ".join(holder.get("cmdline") or [])[:120] or "?"
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started_at')}, "
            f"suite {holder.get('suite')} ({command})")


def _within(take, deadline: float, busy) -> bool:
    while True:
        try:
            take(timeout=0, blocking=False)
            return True
        except Timeout:
            if time.monotonic() >= deadline:
                return False
            busy()
            time.sleep(POLL_S)


def _is_me(holder: dict) -> bool:
    return holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid()


def _may_hold(holder: dict) -> bool:
    """A holder on this host that no longer runs cannot hold a kernel lock; one elsewhere cannot be told."""
    return holder.get("host") != socket.gethostname() or "start_ticks" not in holder or same_process(holder)


def _read(path: Path) -> dict | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _write(path: Path, data: dict) -> None:
    pending = path.with_name(path.name + f".{os.getpid()}.new")
    pending.write_text(json.dumps(data), encoding="utf-8")
    pending.replace(path)
