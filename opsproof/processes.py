"""Process helpers for the sandbox and the restore drill: free ports, waiting for a listener,
stopping by pid, running a server binary as an unprivileged user (PostgreSQL refuses root), and what a
killed run leaves behind: the server still running from a directory, the processes holding a directory,
temporary directories whose creator is gone."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from opsproof.errors import SandboxError
from opsproof.filesystem import Within, file_id


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


def server_from(data_dir) -> int | None:
    """The pid of the PostgreSQL server running from ``data_dir``: the one its ``postmaster.pid`` names, when
    that process is alive and its working directory is ``data_dir`` (a postmaster's is its data directory)
    or its command line names it. A stale file, or its pid reused by another program, gives None."""
    try:
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    here = file_id(data_dir)
    if pid <= 0 or here is None or not alive(pid):
        return None
    if file_id(f"/proc/{pid}/cwd") == here:
        return pid
    found = identity(pid)
    named = found is not None and any(arg.startswith("/") and file_id(arg) == here for arg in found["cmdline"])
    return pid if named else None


def _links(pid: str):
    """("cwd" | "root" | "fd N", target) of one process, as /proc shows them."""
    for name in ("cwd", "root"):
        try:
            yield name, os.readlink(f"/proc/{pid}/{name}")
        except OSError:
            pass
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return
    for fd in fds:
        try:
            yield f"fd {fd}", os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue


def holders(path) -> list[str]:
    """Every process whose working directory, root or an open file lies in ``path`` (through any symlink or
    bind mount), one line each: ``pid 4242 (sleep 300, cwd /x/pgdata)``."""
    within, found = Within(path), []
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        for how, target in _links(pid):
            if within(target):
                command = " ".join(" ".join((identity(int(pid)) or {}).get("cmdline") or ["?"]).split())
                found.append(f"pid {pid} ({command[:80]}, {how} {target})")
                break
    return found


OWNER_FILE = ".opsproof-owner"


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def owned_tempdir(prefix: str) -> Path:
    """``tempfile.mkdtemp(prefix=prefix)`` that records the process creating it (``identity()``, host, boot),
    after removing directories of that prefix whose recorded creator is gone (a killed run's)."""
    remove_orphaned_tempdirs(prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    owner = {**identity(os.getpid()), "host": socket.gethostname(), "boot_id": _boot_id()}
    pending = path / f"{OWNER_FILE}.new"
    pending.write_text(json.dumps(owner))
    pending.rename(path / OWNER_FILE)  # complete or absent: a half-written owner is never judged
    return path


def remove_orphaned_tempdirs(prefix: str) -> list[Path]:
    """Remove this user's ``<tmp>/<prefix>*`` directories whose recorded creator no longer runs (on this
    host: another boot, or ``same_process`` false); one without an owner file is left alone."""
    removed = []
    if identity(os.getpid()) is None:
        return removed  # no /proc: whether a maker still runs cannot be told, so nothing is judged gone
    for path in map(Path, glob.glob(os.path.join(glob.escape(tempfile.gettempdir()), glob.escape(prefix) + "*"))):
        try:
            if not path.is_dir() or path.is_symlink() or path.lstat().st_uid != os.geteuid():
                continue
            owner = json.loads((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() or "pid" not in owner:
            continue
        if owner.get("boot_id") == _boot_id() and same_process(owner):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
