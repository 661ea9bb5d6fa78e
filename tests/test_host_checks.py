"""Host checks for real: on this machine (local://) and over ssh to a throwaway sshd on a loopback port.

Faults are real: a tmpfs filled past its threshold, a process (and its init-script service) stopped,
a listening socket closed, a certificate file that expires in days, a file with the wrong mode.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import testinfra  # noqa: F401 - loaded once, kept across in-process runs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opsproof.sandbox.processes import free_port
from ssh_server import sshd  # noqa: F401 - the module-scoped sshd fixture

PROCESS = "opsproof-dummyd"  # 15 characters: the kernel keeps that much of a process name (comm)
SERVICE = f"opsproof-test-{os.getpid()}"


def write_certificate(path: Path, days: float) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.shop.test")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)


class Machine:
    """This host made to look like a small server: a daemon, its init script, a port, a disk, a cert."""

    def __init__(self, base: Path):
        self.base = base
        self.disk = base / "disk"
        self.disk.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "opsproof-test", str(self.disk)],
                       check=True)
        daemon = base / PROCESS
        shutil.copy("/bin/sleep", daemon)
        self.process = subprocess.Popen([str(daemon), "600"])
        self.pidfile = base / "daemon.pid"
        self.pidfile.write_text(f"{self.process.pid}\n")
        self.init_script = Path("/etc/init.d") / SERVICE
        self.init_script.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            # throwaway LSB-style service for opsproof's tests: status only
            case "$1" in
              status) [ -f {self.pidfile} ] || exit 3; kill -0 "$(cat {self.pidfile})" 2>/dev/null && exit 0; exit 1;;
              *) exit 3;;
            esac
            """))
        self.init_script.chmod(0o755)
        self.rc_link = Path("/etc/rc2.d") / f"S01{SERVICE}"
        self.rc_link.symlink_to(f"../init.d/{SERVICE}")
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.certificate = base / "tls.crt"
        write_certificate(self.certificate, 90)
        self.backups = base / "backups"
        self.backups.mkdir(mode=0o750)
        self.backups.chmod(0o750)

    def target(self, **overrides) -> dict:
        spec = {
            "host": "local://", "timeout_s": 5,
            "filesystems": {str(self.disk): {"warn": 70, "crit": 80}},
            "inodes": {str(self.disk): {"warn": 70, "crit": 80}},
            "memory_available_pct": {"warn": 2, "crit": 1},
            "load_per_cpu": {"warn": 50, "crit": 100},
            "services": [SERVICE], "processes": [PROCESS], "ports": [f"tcp://127.0.0.1:{self.port}"],
            "files": {str(self.certificate): {"mode": "0644", "owner": "root"},
                      str(self.backups): {"directory": True, "mode": "0750", "owner": "root", "group": "root"}},
            "time_sync": True,
            "certificates": {str(self.certificate): {"warn": 30, "crit": 14}},
        }
        spec.update(overrides)
        return spec

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.listener.close()
        self.rc_link.unlink(missing_ok=True)
        self.init_script.unlink(missing_ok=True)
        subprocess.run(["umount", str(self.disk)], check=False)


@pytest.fixture
def machine(tmp_path):
    made = Machine(tmp_path / "machine")
    yield made
    made.close()


def _start_chronyd(config: Path, text: str) -> subprocess.Popen:
    config.write_text(text)
    return subprocess.Popen(["/usr/sbin/chronyd", "-x", "-d", "-f", str(config)],  # -x: never touch the clock
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def chrony(tmp_path):
    """A real NTP exchange on loopback: a chronyd serving its own clock, and the chronyd chronyc asks.

    ``chrony(reachable=False)`` points the client at a port where no server answers: never synchronised.
    """
    started = []

    def start(reachable: bool = True) -> None:
        port = free_port()
        if reachable:
            started.append(_start_chronyd(tmp_path / "server.conf", textwrap.dedent(f"""\
                local stratum 8
                port {port}
                bindaddress 127.0.0.1
                allow 127.0.0.1
                cmdport 0
                bindcmdaddress {tmp_path}/server.sock
                pidfile {tmp_path}/server.pid
                """)))
        started.append(_start_chronyd(tmp_path / "client.conf", textwrap.dedent(f"""\
            server 127.0.0.1 port {port} iburst minpoll -6 maxpoll -6
            port 0
            cmdport 0
            pidfile {tmp_path}/client.pid
            """)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tracking = subprocess.run(["chronyc", "-n", "tracking"], capture_output=True, text=True)
            if tracking.returncode == 0 and (not reachable or "Leap status     : Normal" in tracking.stdout):
                return
            time.sleep(0.2)
        raise RuntimeError(f"chronyd did not come up: {tracking.stdout or tracking.stderr}")

    yield start
    for process in started:
        process.terminate()
        process.wait(5)


def host_env(spec: dict) -> dict:
    return {"tier": "staging", "host": {"box": spec}}


@pytest.fixture
def run_host(write_env, run_checks):
    def run(spec: dict, *args: str):
        return run_checks(write_env(host_env(spec)), "-k", "test_host", *args)

    return run


def outcomes(run) -> dict[str, str]:
    return {r["check"]: r["outcome"] for r in run.results["checks"] if r["kind"] == "host"}


HEALTHY = {"test_time_synchronised", "test_filesystems_below_usage_limit", "test_inodes_below_usage_limit", "test_memory_available_above_floor",
           "test_load_per_cpu_below_limit", "test_services_running_and_enabled", "test_processes_present",
           "test_ports_listening", "test_files_present_with_mode_and_owner", "test_certificate_files_not_expiring"}


def test_healthy_local_host_passes(machine, run_host, chrony):
    chrony()
    run = run_host(machine.target())
    assert run.ret == 0, run.output
    seen = outcomes(run)
    assert {check for check, outcome in seen.items() if outcome == "passed"} == HEALTHY, seen
    assert run.record("test_time_synchronised")["measurements"][:2] == [
        {"measure": "time_sync_source", "value": "chronyc"},
        {"measure": "time_sync_status", "value": "Leap status : Normal"}]
    cert = run.record("test_certificate_files_not_expiring")["measurements"]
    assert cert[0]["value"] == "CN=api.shop.test" and 89 < cert[1]["value"] < 90
    assert run.record("test_services_running_and_enabled")["measurements"][0]["value"] == "sysv"


def test_faults_on_the_local_host_fail_with_evidence(machine, run_host, chrony):
    chrony(reachable=False)
    (machine.disk / "fill").write_bytes(b"\0" * 900 * 1024)
    machine.process.kill()
    machine.process.wait()
    machine.listener.close()
    write_certificate(machine.certificate, 5)
    machine.backups.chmod(0o777)
    run = run_host(machine.target())
    assert run.ret == 1
    message = run.record("test_filesystems_below_usage_limit")["message"]
    assert message.startswith(f"{machine.disk} used_pct (") and message.endswith(") <= 80 on host.box (crit)")
    assert float(message.split("(")[1].split(")")[0]) > 85
    assert run.record("test_processes_present")["message"] == f"processes_missing (['{PROCESS}']) == [] on host.box"
    assert run.record("test_services_running_and_enabled")["message"] == (
        f"services_not_running (['{SERVICE}']) == [] on host.box")
    assert run.record("test_ports_listening")["message"] == (
        f"ports_not_listening (['tcp://127.0.0.1:{machine.port}']) == [] on host.box")
    message = run.record("test_certificate_files_not_expiring")["message"]
    assert message.startswith(f"{machine.certificate} days_to_expiry (5.0)") and message.endswith(
        ") >= 14 on host.box (crit)")
    assert run.record("test_files_present_with_mode_and_owner")["message"] == (
        f"files_not_as_expected ({{'{machine.backups}': {{'mode': '0777'}}}}) == {{}} on host.box")
    time_sync = run.record("test_time_synchronised")
    assert time_sync["message"] == "time_synchronised (false) == true on host.box"
    assert time_sync["measurements"][1] == {"measure": "time_sync_status", "value": "Leap status : Not synchronised"}


def test_inodes_and_certificate_warn_between_warn_and_crit(machine, run_host):
    for index in range(48):  # 64 inodes: the root directory plus 48 files is past 70 %, not 80 %
        (machine.disk / f"f{index}").touch()
    write_certificate(machine.certificate, 20)
    run = run_host(machine.target(), "-k", "inodes or certificate")
    assert run.ret == 0
    assert run.record("test_inodes_below_usage_limit")["outcome"] == "warned"
    assert run.record("test_inodes_below_usage_limit")["message"].endswith(") <= 70 on host.box (warn)")
    assert run.record("test_certificate_files_not_expiring")["message"].endswith(") >= 30 on host.box (warn)")


# --- over ssh --------------------------------------------------------------------------------------

def test_healthy_host_over_ssh_passes(machine, run_host, sshd, chrony):
    chrony()
    run = run_host(machine.target(**sshd))
    assert run.ret == 0, run.output
    assert {c for c, o in outcomes(run).items() if o == "passed"} == HEALTHY


def test_fault_over_ssh_fails_with_evidence(machine, run_host, sshd):
    machine.listener.close()
    (machine.disk / "fill").write_bytes(b"\0" * 900 * 1024)
    run = run_host(machine.target(**sshd), "-k", "ports or filesystems")
    assert run.record("test_ports_listening")["message"] == (
        f"ports_not_listening (['tcp://127.0.0.1:{machine.port}']) == [] on host.box")
    assert run.record("test_filesystems_below_usage_limit")["message"].endswith(") <= 80 on host.box (crit)")


def test_unreachable_host_errors_once_and_skips_the_rest(machine, run_host, sshd, refused_port):
    spec = machine.target(**{**sshd, "host": f"ssh://root@127.0.0.1:{refused_port}", "timeout_s": 2})
    started = time.monotonic()
    run = run_host(spec)
    records = [r for r in run.results["checks"] if r["kind"] == "host"]
    assert run.ret == 1
    assert records[0]["outcome"] == "error"
    assert records[0]["message"] == (
        f"could not measure on host.box: ssh ssh://root@127.0.0.1:{refused_port}: "
        f"ssh: connect to host 127.0.0.1 port {refused_port}: Connection refused")
    assert {r["outcome"] for r in records[1:]} == {"skipped"}
    assert time.monotonic() - started < 2 + 3


def test_silent_ssh_host_errors_within_its_timeout(machine, run_host, sshd, silent_port):
    spec = machine.target(**{**sshd, "host": f"ssh://root@127.0.0.1:{silent_port}", "timeout_s": 1})
    started = time.monotonic()
    run = run_host(spec)
    records = [r for r in run.results["checks"] if r["kind"] == "host"]
    assert records[0]["outcome"] == "error"
    assert records[0]["message"].startswith(f"could not measure on host.box: ssh ssh://root@127.0.0.1:{silent_port}: ")
    assert "timed out" in records[0]["message"]
    assert {r["outcome"] for r in records[1:]} == {"skipped"}
    assert time.monotonic() - started < 1 + 3


def test_environment_rejects_misordered_host_thresholds(write_env):
    from opsproof.environment import load_environment
    from opsproof.errors import ConfigError

    path = write_env(host_env({"host": "local://", "filesystems": {"/": {"warn": 90, "crit": 80}}}))
    with pytest.raises(ConfigError, match=r"host\.box\.filesystems\./.*warn \(90\) must not be above crit \(80\)"):
        load_environment(path)


def test_a_hung_command_is_cut_at_the_timeout():
    from opsproof.errors import ProbeError
    from opsproof.host import HostProbe

    probe = HostProbe("local://", timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ProbeError, match=r"^sleep 30: no answer within 1 s$"):
        probe.run("sleep 30")
    assert time.monotonic() - started < 1 + 1


def test_a_hung_read_in_a_testinfra_module_is_cut_at_the_timeout(tmp_path):
    """testinfra's file module reads with ``cat``: a FIFO nobody writes to blocks it as a hung mount would."""
    from opsproof.errors import ProbeError
    from opsproof.host import HostProbe

    fifo = tmp_path / "cert.pem"
    os.mkfifo(fifo)
    probe = HostProbe("local://", timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ProbeError, match=rf"^cat -- {re.escape(str(fifo))}: no answer within 1 s$"):
        probe.certificate_days_left(str(fifo))
    assert time.monotonic() - started < 1 + 1
