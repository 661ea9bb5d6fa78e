"""The sandbox's process helpers: the generic ones live in opsproof.processes (the drill uses them too);
here, what tells a process the sandbox started from another that now holds its pid, and a stop that
signals only the former."""

from __future__ import annotations

import os
import re
import select
import signal
import time

from opsproof.errors import SandboxError
from opsproof.processes import (  # noqa: F401 - re-exported for the sandbox components
    alive,
    free_port,
    identity,
    require_binary,
    run_unprivileged,
    same_process,
    stop_pid,
    unprivileged_user,
    wait_for_port,
)

# What each component runs, to recognise its servers in a state file that records no identities (older opsproof).
PROGRAMS = {"postgres": "bin/postgres", "redis": "redis-server", "mariadb": "mariadbd", "api": "opsproof.sandbox.api",
            "https": "opsproof.sandbox.https"}


class LeftAlone(SandboxError):
    """A recorded pid now names a process the sandbox did not start: it was not signalled."""


def started_identity(pid: int, timeout_s: float = 2.0) -> dict | None:
    """``identity(pid)`` of a process just started: Popen returns (vfork) before the new program has set
    up its arguments, so its command line can read empty for a moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = identity(pid)
        if found is None or found["cmdline"] or time.monotonic() > deadline:
            return found
        time.sleep(0.005)


def stranger(name: str, record: dict) -> str | None:
    """Why the live process under a recorded pid is not the one the sandbox started; None when it is, or
    when no process has that pid.

    A record carries the identity taken when its process started (start time, command line); a record
    from an older opsproof has none, and then the command line must be the component's own, on its port.
    """
    current = identity(record["pid"]) if alive(record["pid"]) else None
    if current is None:
        return None
    runs = " ".join(current["cmdline"])
    recorded = record.get("identity")
    if recorded is not None:
        if same_process(recorded):
            return None
        return (f"it runs `{runs}` and started at another time than the process the sandbox recorded "
                "(the pid was reused)")
    if PROGRAMS.get(name, "\0") in runs and re.search(rf"(?<!\d){record['port']}(?!\d)", runs):
        return None
    return (f"it runs `{runs}`, not the sandbox's {name} on port {record['port']} (the state file is from an "
            f"older opsproof and records no process identity)")


def running(name: str, record: dict) -> bool:
    """The process the sandbox recorded still runs (its pid alive and not taken over by another)."""
    return alive(record["pid"]) and stranger(name, record) is None


def stop_identified(recorded: dict, timeout_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``, to the process ``recorded`` (an ``identity``) names and
    no other: its pid is pinned with a pidfd before the identity is checked, so a pid reused in between
    is never signalled. True when that process is gone."""
    pid = recorded["pid"]
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfds (Linux before 5.3): check, then signal by pid
        return stop_pid(pid, timeout_s) if same_process(recorded) else True
    try:
        if not same_process(recorded):
            return True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                break
            if select.select([fd], [], [], timeout_s)[0]:  # readable once the process has exited
                break
    finally:
        os.close(fd)
    return not same_process(recorded)  # which also reaps it when it was this process's child
