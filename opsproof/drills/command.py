"""The ``run`` step: a shell command on this machine or on a ``host`` target over ssh, with its deadline, its
expected exit code and its output kept (the last 64 KiB, redacted with the record).

Evidence names the step, never the command (a command may carry secrets). ``env`` values reach the
command through its environment here and through its standard input on a host, never an argument,
which every local user can read in /proc/<pid>/cmdline. The command runs in a session of its own:
at its deadline (or on Ctrl-C) the whole group gets SIGTERM, then SIGKILL 2 s later.

On a host, ssh runs with the options opsproof.host's probes use (batch mode, ConnectTimeout and
ServerAliveInterval from the host's ``timeout_s``, one multiplexed connection per host and drill), and
the command under ``timeout`` there as well; unlike the probes' commands, which are cut at the host's
``timeout_s``, each step has its own deadline. The running itself (session, deadline, bounded output) is
opsproof.commands', and the host's shell opsproof.shell's, both shared with the command and log checks.

>>> execute(["sh", "-c", "echo hi; exit 3"], deadline=time.monotonic() + 5)
(3, 'hi\\n')
"""

from __future__ import annotations

import os
import time

from opsproof.commands import execute
from opsproof.drills.runner import Did, StepFailed
from opsproof.errors import ProbeError
from opsproof.shell import HostShell
from opsproof.ssh import SSH_FAILED


def _shell(context, ref: str) -> HostShell:
    """One shell per host and drill (its one ssh master connection ends with the drill)."""
    def make() -> HostShell:
        host = context.target(ref)
        shell = HostShell(host.host, host.ssh_identity_file, host.ssh_config, host.timeout_s)
        context.closers.append(shell.close)
        return shell
    return context.once(f"shell:{ref}", make)


def step(step, context):
    """The ``run`` step's action: ``do(deadline)`` runs the command and judges its exit code."""
    env = {name: value.get_secret_value() for name, value in step.env.items()}
    ref = step.host if step.host and context.target(step.host).host != "local://" else None

    def do(deadline: float | None):
        started = time.monotonic()
        if ref is None:
            code, output = execute(["/bin/sh", "-c", step.command], {**os.environ, **env}, None, deadline)
        else:
            seconds = max(1.0, (deadline or started + step.timeout) - started)
            try:
                ran = _shell(context, ref).run(step.command, seconds, env, merge_stderr=True)
            except ProbeError as error:  # ssh itself failed: it never reached a shell on the host
                said = str(error).split(": ", 1)[-1]
                raise StepFailed(f"ssh {step.host}: {said or 'connection failed'}", "", SSH_FAILED) from None
            code, output = ran.code, ran.stdout
        took = time.monotonic() - started
        if code is None:
            raise StepFailed(f"no exit within its timeout of {step.timeout:g} s: stopped", output)
        if code != step.expect_exit:
            raise StepFailed(f"exit {code}, expected {step.expect_exit}", output, code)
        return Did(f"exit {code} after {took:.2f} s{f' on {step.host}' if step.host else ''}", output, code)

    return do


def last_line(text: str) -> str:
    """The last non-empty line of a command's output (``""`` when it printed nothing)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
