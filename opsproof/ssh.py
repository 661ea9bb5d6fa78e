"""Commands on a host target over OpenSSH, as bytes and as streams: what testinfra's text-only ``run`` cannot do.

The same settings as the host checks (opsproof/host.py): batch mode (no password prompt), ConnectTimeout
and keep-alives from the target's ``timeout_s``, one multiplexed connection per host and run, and every
remote command under coreutils ``timeout`` on the host, with a local deadline behind it.

>>> channel = SshChannel.of(host_target)                            # doctest: +SKIP
>>> channel.run("sha256sum -b -- /backups/db.sql.gz", 600).stdout   # doctest: +SKIP
b'9f86d0...  */backups/db.sql.gz\\n'
>>> with channel.stream("cat -- /backups/db.dump", 600) as stream:  # doctest: +SKIP
...     head = stream.stdout.read(5)
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from urllib.parse import urlsplit

from opsproof.errors import ProbeError, first_line

SSH_FAILED = 255  # ssh's own exit status: it never reached a shell on the host (or lost it)
TIMED_OUT = 124  # coreutils timeout: the command ran out of time on the host
NOT_FOUND = 127  # the shell found no such command
REMOTE_SIGPIPE = 128 + 13  # the remote command wrote to a reader that had gone
_GRACE_S = 5  # the local deadline trails the host's, so the host's timeout speaks first

_SOCKET_PATH_MAX = 107  # bytes of a Unix socket's path (sun_path less its NUL)
_SHARED: dict[tuple, list] = {}  # settings -> [channel, users]: one master connection per host and run
_LOCK = threading.Lock()


def _control_dir() -> str:
    """A fresh directory for the master connection's socket, in a temporary directory short enough for its path
    (ssh binds ``<dir>/m.<16 random characters>`` first): a long TMPDIR falls back to /tmp."""
    for base in (tempfile.gettempdir(), "/tmp"):
        if len(base) + len("/opsproof-ssh-12345678/m.1234567890123456") <= _SOCKET_PATH_MAX:
            return tempfile.mkdtemp(prefix="opsproof-ssh-", dir=base)
    raise ProbeError("no temporary directory with a path short enough for an ssh control socket")


class SshChannel:
    def __init__(self, spec: str, identity_file: str | None = None, ssh_config: str | None = None,
                 timeout_s: float = 10.0):
        where = urlsplit(spec)
        self.spec, self.timeout_s = spec, timeout_s
        self._destination = f"{where.username}@{where.hostname}" if where.username else where.hostname
        self._port = where.port
        self._identity = os.path.expanduser(identity_file) if identity_file else None
        self._config = os.path.expanduser(ssh_config) if ssh_config else None
        self._control_dir: str | None = None
        self._key: tuple | None = None

    @classmethod
    def of(cls, host) -> SshChannel:
        """The shared channel of a host target (``ssh://user@host:port``); ``release()`` when done."""
        key = (host.host, host.ssh_identity_file, host.ssh_config, host.timeout_s)
        with _LOCK:
            if key not in _SHARED:
                _SHARED[key] = [cls(*key), 0]
                _SHARED[key][0]._key = key
            _SHARED[key][1] += 1
            return _SHARED[key][0]

    def release(self) -> None:
        with _LOCK:
            entry = _SHARED.get(self._key) if self._key else None
            if entry is not None:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _SHARED[self._key]
        self.close()

    def argv(self, command: str, timeout_s: float) -> list[str]:
        if self._control_dir is None:
            self._control_dir = _control_dir()
        seconds = max(1, math.ceil(self.timeout_s))
        args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={seconds}",
                "-o", f"ServerAliveInterval={seconds}", "-o", "ServerAliveCountMax=1",
                "-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/m",
                "-o", "ControlPersist=120"]
        if self._config:
            args += ["-F", self._config]
        if self._identity:
            args += ["-i", self._identity]
        if self._port:
            args += ["-p", str(self._port)]
        bounded = f"timeout -k 1 {timeout_s:g} sh -c {shlex.quote(command)}"
        return [*args, "--", self._destination, bounded]

    def deadline_s(self, timeout_s: float) -> float:
        """The local deadline of a command bounded by ``timeout_s`` on the host: connecting, then a grace period."""
        return timeout_s + self.timeout_s + _GRACE_S

    def run(self, command: str, timeout_s: float | None = None, ok=(0,)) -> subprocess.CompletedProcess:
        """stdout and stderr as bytes; an exit status outside ``ok`` raises ProbeError saying why."""
        timeout_s = timeout_s or self.timeout_s
        try:
            result = subprocess.run(self.argv(command, timeout_s), capture_output=True, stdin=subprocess.DEVNULL,
                                    timeout=self.deadline_s(timeout_s))
        except FileNotFoundError:
            raise ProbeError(f"ssh not found: install the OpenSSH client to reach {self.spec}") from None
        except subprocess.TimeoutExpired:
            raise ProbeError(f"ssh {self.spec}: no answer within {self.deadline_s(timeout_s):g} s",
                             unreachable=True) from None
        if result.returncode not in ok:
            self.fail(command, result.returncode, result.stderr, timeout_s)
        return result

    def stream(self, command: str, timeout_s: float, stdout=subprocess.PIPE) -> Stream:
        """A running command whose stdout is read as it comes (or goes to ``stdout``, a file)."""
        return Stream(self, command, timeout_s, stdout)

    def fail(self, command: str, status: int, stderr: bytes, timeout_s: float):
        """Raise the ProbeError an exit status means: ssh unreachable, timed out, missing tool, failed."""
        said = first_line(stderr.decode(errors="replace")) if stderr else ""
        if status == SSH_FAILED:
            raise ProbeError(f"ssh {self.spec}: {said or 'connection failed'}", unreachable=True)
        if status == TIMED_OUT:
            raise ProbeError(f"{command}: no answer within {timeout_s:g} s on {self.spec}")
        if status == NOT_FOUND:
            raise ProbeError(f"{command.split()[0]} not found on {self.spec}: {said}")
        raise ProbeError(f"{command}: exit {status} on {self.spec}: {said}")

    def close(self) -> None:
        """Ends the master connection (it would otherwise linger for ControlPersist)."""
        if self._control_dir:
            socket_path = os.path.join(self._control_dir, "m")
            if os.path.exists(socket_path):
                subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "opsproof-backups"],
                               capture_output=True, timeout=self.timeout_s)
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None


class Stream:
    """A remote command read as a stream; ``finish(stopped_early)`` says whether it went wrong.

    The host's ``timeout`` bounds it, and a local timer kills ssh after the grace period in case the
    host never answers again. A stream read to its end must have exited 0; one the reader stopped
    early (a corrupt member found) is killed, and only what did not come from that stop is an error:
    a timeout, ssh's own failure, the command's own error (``cat: ...: Permission denied``).
    """

    def __init__(self, channel: SshChannel, command: str, timeout_s: float, stdout):
        self.channel, self.command, self.timeout_s = channel, command, timeout_s
        self._stderr = tempfile.TemporaryFile()  # a pipe could fill and stall the command
        try:
            self.process = subprocess.Popen(channel.argv(command, timeout_s), stdin=subprocess.DEVNULL, stdout=stdout,
                                            stderr=self._stderr)
        except FileNotFoundError:
            self._stderr.close()
            raise ProbeError(f"ssh not found: install the OpenSSH client to reach {channel.spec}") from None
        self.stdout = self.process.stdout
        self._expired = False
        self._timer = threading.Timer(channel.deadline_s(timeout_s), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self._expired = True
        self.process.kill()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def finish(self, stopped_early: bool = False) -> None:
        if stopped_early and self.process.poll() is None:
            self.process.kill()
        if self.stdout is not None:
            self.stdout.close()
        status = self.process.wait()
        self._timer.cancel()
        if self._expired:
            waited = self.channel.deadline_s(self.timeout_s)
            raise ProbeError(f"ssh {self.channel.spec}: no answer within {waited:g} s", unreachable=True)
        self._stderr.seek(0)
        stderr = self._stderr.read()
        if status == 0 or (stopped_early and (status < 0 or status == REMOTE_SIGPIPE)):
            return  # killed by us, or the remote command by SIGPIPE once the reader had stopped
        self.channel.fail(self.command, status, stderr, self.timeout_s)

    def close(self) -> None:
        self._timer.cancel()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.stdout is not None and not self.stdout.closed:
            self.stdout.close()
        self._stderr.close()
