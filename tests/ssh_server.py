"""A real OpenSSH server for the tests that reach hosts over ssh (host checks, backups on a host)."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on a loopback port with throwaway host and user keys (not the system service)."""
    base = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)], check=True)
    (base / "authorized_keys").write_text((base / "user_key.pub").read_text())
    port = free_port()
    (base / "sshd_config").write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {base / 'host_key'}
        PidFile {base / 'sshd.pid'}
        AuthorizedKeysFile {base / 'authorized_keys'}
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        SetEnv SHLVL=1
        """))
    (base / "ssh_config").write_text(textwrap.dedent(f"""\
        Host 127.0.0.1
          StrictHostKeyChecking no
          UserKnownHostsFile {os.devnull}
          LogLevel ERROR
        """))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(base / "sshd_config")],
                               stderr=subprocess.DEVNULL)
    wait_for_port(port, 10, "sshd", process)
    yield {"host": f"ssh://root@127.0.0.1:{port}", "ssh_identity_file": str(base / "user_key"),
           "ssh_config": str(base / "ssh_config")}
    stop_pid(process.pid)
    process.wait()
