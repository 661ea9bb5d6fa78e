"""Host probe: testinfra (``local://`` or ``ssh://``) reading df, /proc, ps, ss and files; read-only.

Every value comes from commands a runbook would type (``df -P``, ``/proc/meminfo``, ``ss``), run
through testinfra so the same checks work on this machine and over ssh. ssh runs in batch mode with
ConnectTimeout, so a host that does not answer fails one check within ``timeout_s``; every command,
also those testinfra's modules (file, service, socket, process) run, is cut at ``timeout_s`` on the
host, so a stat on a hung NFS mount errors that check instead of hanging the run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone

from opsproof.errors import ProbeError, first_line

SSH_UNREACHABLE = 255  # ssh's own exit status: it never reached a shell on the host
COMMAND_TIMED_OUT = 124  # coreutils timeout: the command ran out of time


def _bounded_host(spec: str, timeout_s: float, kwargs: dict):
    """A testinfra host of our own (not testinfra's shared cache) whose every command runs under
    ``timeout`` on the host; a command cut there raises ProbeError rather than reading as "false"."""
    import testinfra.backend
    import testinfra.host

    backend = testinfra.backend.get_backend(spec, **kwargs)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    quote_command, run = backend.get_command, backend.run

    def bounded_command(command: str, *args: str) -> str:
        return f"timeout -k 1 {timeout_s:g} sh -c {shlex.quote(quote_command(command, *args))}"

    def bounded_run(command: str, *args: str, **kwargs):
        result = run(command, *args, **kwargs)
        if result.rc == COMMAND_TIMED_OUT:
            raise ProbeError(f"{backend.quote(command, *args)}: no answer within {timeout_s:g} s")
        return result

    backend.get_command, backend.run = bounded_command, bounded_run
    return host


class HostProbe:
    def __init__(self, spec: str, ssh_identity_file: str | None = None, ssh_config: str | None = None,
                 timeout_s: float = 10.0):
        self.spec, self.timeout_s = spec, timeout_s
        self._identity = os.path.expanduser(ssh_identity_file) if ssh_identity_file else None
        self._ssh_config = os.path.expanduser(ssh_config) if ssh_config else None
        self._host = None
        self._reached = False
        self._control_dir: str | None = None
        self._manager: str | None | bool = False  # False: not asked yet
        self._shell = None
        self._samples: dict[float, object] = {}

    def _reach(self) -> None:
        """One round trip before testinfra modules run, so an unreachable host is said so."""
        if not self._reached:
            self.run("true")
            self._reached = True

    def _testinfra(self):
        if self._host is None:
            kwargs = {}
            if not self.spec.startswith("local://"):
                # one multiplexed ssh connection per probe: each check runs a few dozen short commands
                self._control_dir = tempfile.mkdtemp(prefix="opsproof-ssh-")
                kwargs = {"ssh_identity_file": self._identity, "ssh_config": self._ssh_config,
                          "timeout": max(1, int(self.timeout_s)), "controlpersist": 120,
                          "controlpath": os.path.join(self._control_dir, "master"),
                          "ssh_extra_args": f"-o BatchMode=yes -o ServerAliveInterval={max(1, int(self.timeout_s))} "
                                            "-o ServerAliveCountMax=1"}
            self._host = _bounded_host(self.spec, self.timeout_s, {k: v for k, v in kwargs.items() if v is not None})
        return self._host

    def run(self, command: str) -> str:
        """stdout of a command that must succeed; an ssh failure makes the host unreachable."""
        try:
            result = self._testinfra().run(command)
        except RuntimeError as exc:  # testinfra's ssh backend raises when ssh itself exits 255
            result = exc.args[0] if exc.args and hasattr(exc.args[0], "rc") else None
            if result is None or result.rc != SSH_UNREACHABLE:
                raise
            raise ProbeError(f"ssh {self.spec}: {first_line(result.stderr or 'connection failed')}",
                             unreachable=True) from None
        if result.rc != 0:
            raise ProbeError(f"{command}: exit {result.rc}: {first_line(result.stderr or result.stdout or '')}")
        return result.stdout

    def _df(self, mount: str, flag: str) -> tuple[int, int]:
        lines = self.run(f"df -P {flag} {shlex.quote(mount)}").strip().splitlines()
        fields = lines[-1].split()
        return int(fields[2]), int(fields[3])  # used, available (blocks or inodes)

    def filesystem_used_pct(self, mount: str) -> float:
        """Used / (used + available), as df computes Use% (root's reserved blocks count as unavailable)."""
        used, available = self._df(mount, "-k")
        return 100.0 * used / (used + available) if used + available else 0.0

    def inodes_used_pct(self, mount: str) -> float:
        used, available = self._df(mount, "-i")
        return 100.0 * used / (used + available) if used + available else 0.0

    def memory_available_pct(self) -> float:
        info = {}
        for line in self.run("cat /proc/meminfo").splitlines():
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0])
        return 100.0 * info["MemAvailable"] / info["MemTotal"]

    def load_per_cpu(self) -> tuple[float, int]:
        """The 5-minute load average divided by the CPUs this host may use (``nproc``)."""
        load_5m = float(self.run("cat /proc/loadavg").split()[1])
        cpus = int(self.run("nproc").strip())
        return load_5m / cpus, cpus

    def service_manager(self) -> str | None:
        if self._manager is not False:
            return self._manager
        host = self._testinfra()
        self._reach()  # unreachable is not "no service manager"
        if host.file("/run/systemd/system").is_directory:
            self._manager = "systemd"
        else:
            self._manager = "sysv" if host.exists("service") else None
        return self._manager

    def service(self, name: str) -> tuple[bool, bool]:
        """(running, enabled) from systemd, or from the init script and rc?.d links without it.

        testinfra picks systemd whenever /sbin/init links to it, even in a container where systemd
        is not running; only a running systemd (/run/systemd/system) can answer, so ask sysv otherwise.
        """
        host = self._testinfra()
        if self.service_manager() == "systemd":
            service = host.service(name)
        else:
            from testinfra.modules.service import SysvService

            service = type("SysvService", (SysvService,), {"_host": host})(name)
        return bool(service.is_running), bool(service.is_enabled)

    def process_count(self, name: str) -> int:
        self._reach()
        return len(self._testinfra().process.filter(comm=name))

    def listening(self, spec: str) -> bool:
        self._reach()
        return bool(self._testinfra().socket(spec).is_listening)

    def file(self, path: str) -> dict:
        """exists, directory, mode ("0640"), owner and group of a path."""
        self._reach()
        file = self._testinfra().file(path)
        if not file.exists:
            return {"exists": False}
        return {"exists": True, "directory": file.is_directory, "mode": f"{file.mode:04o}",
                "owner": file.user, "group": file.group}

    def time_synchronised(self) -> tuple[str, bool, str] | None:
        """(source, synchronised, what it said) from timedatectl (systemd) or chronyc; None when neither can say."""
        host = self._testinfra()
        self._reach()
        if host.file("/run/systemd/system").is_directory and host.exists("timedatectl"):
            answer = self.run("timedatectl show -p NTPSynchronized --value").strip()
            return "timedatectl", answer == "yes", f"NTPSynchronized={answer}"
        if host.exists("chronyc"):
            tracking = host.run("chronyc -n tracking")
            if tracking.rc != 0:  # no chronyd to ask is not synchronised either
                return "chronyc", False, first_line(tracking.stderr or tracking.stdout or f"exit {tracking.rc}")
            leap = next((line for line in tracking.stdout.splitlines() if line.startswith("Leap status")), "")
            return "chronyc", " ".join(leap.split()) == "Leap status : Normal", " ".join(leap.split())
        return None

    def certificate_days_left(self, path: str) -> tuple[float, str]:
        """Days until the PEM certificate at ``path`` expires, and its subject."""
        from cryptography import x509

        self._reach()
        file = self._testinfra().file(path)
        if not file.exists:
            raise ProbeError(f"{path}: no such file")
        try:
            certificate = x509.load_pem_x509_certificate(file.content)
        except ValueError as exc:
            raise ProbeError(f"{path}: not a PEM certificate ({first_line(exc)})") from None
        left = certificate.not_valid_after_utc - datetime.now(timezone.utc)
        return left.total_seconds() / 86400, certificate.subject.rfc4514_string()

    @property
    def shell(self):
        """The shell command and log checks run in (opsproof.shell): one runner, bounded and killable."""
        if self._shell is None:
            from opsproof.shell import HostShell

            self._shell = HostShell(self.spec, self._identity, self._ssh_config, self.timeout_s)
        return self._shell

    def command(self, check):
        """Run a command check's command (opsproof.commands.Ran): its head kept, up to max_output_bytes."""
        env = {name: value.get_secret_value() for name, value in check.env.items()}
        return self.shell.run(check.run, check.timeout_s, env, keep_bytes=check.max_output_bytes, head=True)

    def memory_used_pct(self) -> float:
        """(MemTotal - MemAvailable) / MemTotal: the "used" that ``free`` prints since procps 3.3.10."""
        return 100.0 - self.memory_available_pct()

    def sample(self, seconds: float):
        """CPU and processes over ``seconds`` (opsproof.hoststats.Sample), taken once per probe and window."""
        if seconds not in self._samples:
            from opsproof.hoststats import SAMPLE_BYTES, parse_sample, script

            ran = self.shell.run(script(seconds), seconds + self.timeout_s, keep_bytes=SAMPLE_BYTES)
            if ran.code != 0 or ran.truncated:
                said = "more than 16 MiB" if ran.truncated else \
                    f"exit {ran.code}: {first_line(ValueError(ran.stderr or '?'))}"
                raise ProbeError(f"sampling /proc on {self.spec}: {said}")
            self._samples[seconds] = parse_sample(ran.stdout, seconds)
        return self._samples[seconds]

    def log(self, check):
        """Scan a log check's source on this host (opsproof.logsource.scan_host_log)."""
        from opsproof.logsource import scan_host_log

        return scan_host_log(self, check)

    def pm2_apps(self, pm2) -> list[dict] | None:
        """``pm2 jlist`` without ever starting a daemon: None when none runs for the PM2_HOME."""
        from opsproof.pm2 import jlist

        return jlist(self.shell, pm2)

    def close(self) -> None:
        """Ends the ssh master connection (it would otherwise linger for ControlPersist)."""
        self._host = None
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        if self._control_dir:
            socket_path = os.path.join(self._control_dir, "master")
            if os.path.exists(socket_path):
                subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "opsproof-host"],
                               capture_output=True, timeout=self.timeout_s)
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None
