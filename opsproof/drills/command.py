"""The ``run`` step: a shell command on this machine or on a ``host`` target over ssh, with its deadline, its
expected exit code and its output kept (the last 64 KiB, redacted with the record).

Evidence names the step, never the command (a command may carry secrets). ``env`` values reach the
command through its environment here and through its standard input on a host, never an argument,
which every local user can read in /proc/<pid>/cmdline. The command runs in a session of its own:
at its deadline (or on Ctrl-C) the whole group gets SIGTERM, then SIGKILL 2 s later.

On a host, ssh runs with the options opsproof.host's probes use (batch mode, ConnectTimeout and
ServerAliveInterval from the host's ``timeout_s``, one multiplexed connection per host and drill), and
the command under ``timeout`` there as well; unlike the probes' commands, which are cut at the host's
``timeout_s``, each step has its own deadline.

>>> execute(["sh", "-c", "echo hi; exit 3"], deadline=time.monotonic() + 5)
(3, 'hi\\n')
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from urllib.parse import urlsplit

from opsproof.drills.runner import Did, StepFailed
from opsproof.host import COMMAND_TIMED_OUT, SSH_UNREACHABLE
from opsproof.processes import owned_tempdir

OUTPUT_BYTES = 64 * 1024
KILL_GRACE_S = 2.0


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the command's session, SIGKILL after the grace period."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def execute(argv: list[str], env: dict | None = None, stdin: bytes | None = None,
            deadline: float | None = None) -> tuple[int | None, str]:
    """Run ``argv`` in its own session until it exits or ``deadline``; returns (exit code, or None when it was
    stopped at its deadline; the last ``OUTPUT_BYTES`` of stdout and stderr together)."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    kept = bytearray()

    def drain() -> None:
        for chunk in iter(lambda: os.read(process.stdout.fileno(), 65536), b""):
            kept.extend(chunk)
            del kept[:-OUTPUT_BYTES]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if stdin is not None:
            try:
                process.stdin.write(stdin)
                process.stdin.close()
            except BrokenPipeError:
                pass
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            code = process.wait(remaining)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            code = None
    except BaseException:  # Ctrl-C or SIGTERM: the command goes with the drill's step
        _stop_group(process)
        raise
    finally:
        reader.join(1.0)  # a daemon it started may hold the pipe open; what was read is enough
        process.stdout.close()
    return code, bytes(kept).decode(errors="replace")


def _ssh(host, control_dir: str) -> list[str]:
    """ssh to a host target as opsproof.host does: batch mode, its timeouts, one multiplexed connection."""
    parts = urlsplit(host.host)
    seconds = str(max(1, int(host.timeout_s)))
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={seconds}", "-o", f"ServerAliveInterval={seconds}",
            "-o", "ServerAliveCountMax=1", "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
            "-o", f"ControlPath={control_dir}/%C"]
    if host.ssh_config:
        argv += ["-F", os.path.expanduser(host.ssh_config)]
    if host.ssh_identity_file:
        argv += ["-i", os.path.expanduser(host.ssh_identity_file)]
    if parts.port:
        argv += ["-p", str(parts.port)]
    return [*argv, f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname]


def _control_dir(context) -> str:
    """One ssh control directory per drill; its master connections end with the drill."""
    def make() -> str:
        directory = str(owned_tempdir("opsproof-dr-ssh-"))  # a killed run's is removed by the next one

        def close() -> None:
            import shutil

            for socket_path in os.listdir(directory):
                subprocess.run(["ssh", "-o", f"ControlPath={directory}/{socket_path}", "-O", "exit", "opsproof"],
                               capture_output=True, timeout=10)
            shutil.rmtree(directory, ignore_errors=True)

        context.closers.append(close)
        return directory
    return context.once("ssh-control-dir", make)


def step(step, context):
    """The ``run`` step's action: ``do(deadline)`` runs the command and judges its exit code."""
    env = {name: value.get_secret_value() for name, value in step.env.items()}
    host = context.target(step.host) if step.host and context.target(step.host).host != "local://" else None

    def do(deadline: float | None):
        started = time.monotonic()
        if host is None:
            code, output = execute(["/bin/sh", "-c", step.command], {**os.environ, **env}, None, deadline)
        else:
            seconds = max(1.0, (deadline or started + step.timeout) - started)
            script = f'eval "$(cat)"; {step.command}' if env else step.command
            remote = f"timeout -k 2 {seconds:.0f} sh -c {shlex.quote(script)}"
            exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()).encode() if env else None
            code, output = execute([*_ssh(host, _control_dir(context)), remote], None, exports,
                                   None if deadline is None else deadline + 3)
            if code == SSH_UNREACHABLE:
                raise StepFailed(f"ssh {step.host}: {last_line(output) or 'connection failed'}", output, code)
            if code == COMMAND_TIMED_OUT:  # cut by timeout on the host
                code = None
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
