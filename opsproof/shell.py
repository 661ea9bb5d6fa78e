"""A host target's shell for command and log checks: this machine (``local://``) or one reached by ssh.

Both go through opsproof.commands' runner (own session, deadline, bounded output). Over ssh the command
runs under coreutils ``timeout`` on the host as well, through the host's one multiplexed connection
(opsproof.ssh), and ``env`` values travel on standard input, never in an argument that every user of either
machine can read in /proc/<pid>/cmdline.

>>> shell = HostShell(host_target)                      # doctest: +SKIP
>>> shell.run("pm2 jlist", timeout_s=10).code            # doctest: +SKIP
0
"""

from __future__ import annotations

import os
import shlex

from opsproof.commands import Ran, run
from opsproof.errors import ProbeError, first_line
from opsproof.ssh import SSH_FAILED, TIMED_OUT, SshChannel


class HostShell:
    def __init__(self, spec: str, identity_file: str | None = None, ssh_config: str | None = None,
                 timeout_s: float = 10.0):
        self.spec = spec
        self.local = spec.startswith("local://")
        self._channel = None if self.local else SshChannel(spec, identity_file, ssh_config, timeout_s)

    def run(self, command: str, timeout_s: float, env: dict[str, str] | None = None, **bounds) -> Ran:
        """Run ``command`` with ``sh -c``; ``bounds`` are opsproof.commands.run's (keep_bytes, head,
        merge_stderr, consume). Exit code None: stopped at ``timeout_s``. ssh failing raises ProbeError."""
        if self.local:
            return run(["/bin/sh", "-c", command], timeout_s, {**os.environ, **(env or {})}, **bounds)
        script = f'eval "$(cat)"; {command}' if env else command
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()).encode() if env else None
        ran = run(self._channel.argv(script, timeout_s), self._channel.deadline_s(timeout_s), None, exports,
                  **bounds)
        if ran.code == SSH_FAILED:
            said = first_line(ValueError(ran.stderr or ran.stdout)) if (ran.stderr or ran.stdout).strip() else ""
            raise ProbeError(f"ssh {self.spec}: {said or 'connection failed'}", unreachable=True)
        if ran.code == TIMED_OUT:  # cut by timeout on the host
            return Ran(None, ran.stdout, ran.stderr, ran.took_s, ran.stdout_bytes, ran.truncated)
        return ran

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
