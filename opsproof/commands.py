"""The one command runner: a command in its own session, with a deadline, its output bounded as it comes.

Drills' ``run`` steps, command checks and log checks that read a command's output all run through
``execute``. At the deadline (or on Ctrl-C) the whole process group gets SIGTERM, then SIGKILL 2 s later,
so a command's children go with it. Output is never held whole: the last ``keep_bytes`` are kept (or the
first, for output that must be parsed from its start), and a ``consume`` callback sees every chunk as it
arrives (a log check counts its lines that way, in bounded memory).

>>> execute(["sh", "-c", "echo hi; exit 3"], deadline=time.monotonic() + 5)
(3, 'hi\\n')
>>> ran = run(["sh", "-c", "echo out; echo err >&2"], timeout_s=5)
>>> ran.code, ran.stdout, ran.stderr
(0, 'out\\n', 'err\\n')
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

OUTPUT_BYTES = 64 * 1024
KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit code (None when stopped at its deadline), output and time."""

    code: int | None
    stdout: str
    stderr: str
    took_s: float
    stdout_bytes: int  # how much it printed, kept or not
    truncated: bool  # stdout was longer than what was kept

    @property
    def timed_out(self) -> bool:
        return self.code is None


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


class _Sink:
    """Reads one pipe to its end, keeping at most ``keep`` bytes (its head or its tail)."""

    def __init__(self, pipe, keep: int, head: bool, consume: Callable[[bytes], None] | None):
        self.kept, self.seen = bytearray(), 0
        self._pipe, self._keep, self._head, self._consume = pipe, keep, head, consume
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        for chunk in iter(lambda: os.read(self._pipe.fileno(), 65536), b""):
            self.seen += len(chunk)
            if self._consume is not None:
                self._consume(chunk)
            if self._head:
                if len(self.kept) < self._keep:
                    self.kept.extend(chunk[: self._keep - len(self.kept)])
            else:
                self.kept.extend(chunk)
                del self.kept[:-self._keep]

    def text(self) -> str:
        return bytes(self.kept).decode(errors="replace")


def run(argv: list[str], timeout_s: float, env: dict | None = None, stdin: bytes | None = None,
        keep_bytes: int = OUTPUT_BYTES, head: bool = False, merge_stderr: bool = False,
        consume: Callable[[bytes], None] | None = None) -> Ran:
    """Run ``argv`` in its own session until it exits or ``timeout_s`` passes; stdout and stderr each
    bounded to ``keep_bytes`` (stderr into stdout with ``merge_stderr``), ``consume`` fed every stdout chunk."""
    started = time.monotonic()
    process = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                               env=env, start_new_session=True)
    out = _Sink(process.stdout, keep_bytes, head, consume)
    err = None if merge_stderr else _Sink(process.stderr, min(keep_bytes, OUTPUT_BYTES), False, None)
    try:
        if stdin is not None:
            try:
                process.stdin.write(stdin)
                process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = process.wait(max(0.0, timeout_s - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            _stop_group(process)
            code = None
    except BaseException:  # Ctrl-C or SIGTERM: the command goes with the run
        _stop_group(process)
        raise
    finally:
        for sink in (out, err):
            if sink is not None:
                sink.thread.join(1.0)  # a daemon it started may hold the pipe open; what was read is enough
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
    return Ran(code, out.text(), err.text() if err else "", time.monotonic() - started, out.seen,
               out.seen > len(out.kept))


def execute(argv: list[str], env: dict | None = None, stdin: bytes | None = None,
            deadline: float | None = None) -> tuple[int | None, str]:
    """A drill step's form of ``run``: (exit code or None at ``deadline``, the last ``OUTPUT_BYTES`` of
    stdout and stderr together)."""
    timeout_s = 10 * 365 * 86400.0 if deadline is None else deadline - time.monotonic()
    ran = run(argv, timeout_s, env, stdin, merge_stderr=True)
    return ran.code, ran.stdout
