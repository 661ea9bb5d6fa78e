"""Process helpers for the sandbox and the restore drill: free ports, waiting for a listener,
stopping by pid, running a server binary as an unprivileged user (PostgreSQL refuses root)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

from opsproof.errors import SandboxError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, what: str, process=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SandboxError(f"{what} exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SandboxError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:g} s")


def stop_pid(pid: int, timeout_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; True when the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return not alive(pid)


def alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def identity(pid: int) -> dict | None:
    """What tells this process apart from a later one reusing its pid: its start time (clock ticks since
    boot, /proc/<pid>/stat field 22) and command line; None when there is no such process.

    >>> identity(os.getpid())["start_ticks"] > 0
    True
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(") ", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = [arg.decode(errors="replace") for arg in cmdline.read().split(b"\0") if arg]
    except (OSError, IndexError):
        return None
    return {"pid": pid, "start_ticks": int(fields[19]), "cmdline": argv}


def same_process(recorded: dict) -> bool:
    """True when ``recorded`` (an ``identity()``) still names the running process it was taken of:
    same pid, same start time. A pid reused by another program is not it, whatever its name."""
    current = identity(recorded["pid"])
    return current is not None and current["start_ticks"] == recorded.get("start_ticks") and alive(recorded["pid"])


def unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise SandboxError("running as root and no unprivileged user (postgres or nobody) exists to run PostgreSQL")


def require_binary(name: str, package: str, candidates: tuple[str, ...] = ()) -> str:
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    raise SandboxError(f"{name} not found: install the Debian package {package} (apt-get install {package})")


def give_to_unprivileged(path) -> None:
    """Hand ``path`` and everything under it to ``unprivileged_user()`` (nothing to do when not root)."""
    user = unprivileged_user()
    if user is None:
        return
    os.lchown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def run_unprivileged(args: list[str], timeout_s: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run ``args`` as ``unprivileged_user()`` when root (HOME=/tmp), capturing text output."""
    user = unprivileged_user()
    if user is not None:
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        kwargs["env"] = {**kwargs.get("env", os.environ), "HOME": "/tmp", "USER": user.pw_name,
                         "LOGNAME": user.pw_name}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, **kwargs)
