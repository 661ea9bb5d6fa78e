"""The generic drill runner: steps in order, each timed into the drill record; the closing steps always after.

A step is an ``Action``: its name, its timeout, and a function of its deadline that does the work and
returns what it did (the step's ``detail``). It raises ``StepFailed`` when it could not (with what a
command printed and its exit code): the drill stops there. Any other exception is recorded as that
step's failure and raised on once the closing steps ran (a ``ProbeError``: the check could not measure).
Each step type bounds itself by its deadline (a command is killed, a wait gives up); a step that
still returns after its deadline has failed it.

The closing steps (a DR scenario's ``rollback``, the restore drill's clean-up) run in a ``finally``: after
success, after a failed step, after Ctrl-C or SIGTERM, which wait until they are done (each is bounded
by its own timeout). The first one that fails stops them, and ``cleanup_left`` says what was left.

>>> record = run(DrillRecord(kind="dr"), [Action("stop_api", lambda deadline: "api stopped", 30)])
>>> [(s.name, s.outcome, s.detail) for s in record.steps]
[('stop_api', 'passed', 'api stopped')]
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opsproof.errors import first_line
from opsproof.record import DrillRecord, Step
from opsproof.record.drill import tail, utc_now


class StepFailed(Exception):
    """A step could not do its job; the message is what the record says (``output``: what a command printed)."""

    def __init__(self, message: str, output: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.output, self.exit_code = output, exit_code


@dataclass(frozen=True)
class Did:
    """What a step did, when it has more to say than its detail: a command's output and exit code."""

    detail: str
    output: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Action:
    """One step: ``do(deadline)`` (a ``time.monotonic()`` value, or None without a timeout) returns its detail
    (or a ``Did``)."""

    name: str
    do: Callable[[float | None], str | Did | None]
    timeout_s: float | None = None
    kind: str | None = None  # a DR step's type
    target: str | None = None  # what it acts on


def perform(steps: list[Step], action: Action) -> Step:
    """Run one action as a timed step appended to ``steps``; a ``StepFailed`` is recorded, anything else
    is recorded and raised (Ctrl-C as ``interrupted``)."""
    entry = Step(name=action.name, kind=action.kind, target=action.target, timeout_s=action.timeout_s,
                 started_at=utc_now())
    steps.append(entry)
    began = time.monotonic()
    deadline = began + action.timeout_s if action.timeout_s else None
    try:
        done = action.do(deadline)
        if isinstance(done, Did):
            entry.detail, entry.output_tail, entry.exit_code = done.detail, tail(done.output), done.exit_code
        else:
            entry.detail = done
    except StepFailed as failure:
        entry.outcome, entry.error = "failed", str(failure)
        entry.output_tail, entry.exit_code = tail(failure.output), failure.exit_code
    except BaseException as error:
        entry.outcome = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        entry.error = first_line(error)
        raise
    finally:
        entry.finished_at, entry.duration_s = utc_now(), round(time.monotonic() - began, 3)
    if deadline is not None and entry.outcome == "passed" and time.monotonic() > deadline:
        entry.outcome = "failed"
        entry.error = f"took {entry.duration_s:g} s, past its timeout of {action.timeout_s:g} s"
    return entry


@contextmanager
def interrupts_wait() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then interrupt (a rollback must not be cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt(f"{signal.Signals(received[0]).name} during the drill's closing steps")


def close(steps: list[Step], closing: Sequence[Action], record: DrillRecord) -> bool:
    """Run the closing steps until one fails; True when all passed. ``cleanup_left`` says what was left."""
    for index, action in enumerate(closing):
        said = len(record.cleanup_left)  # a step may say itself what it left
        try:
            entry = perform(steps, action)
        except Exception:  # noqa: BLE001 - recorded on the step; the next drill must know what was left
            entry = steps[-1]
        if entry.outcome != "passed":
            if len(record.cleanup_left) == said:
                record.cleanup_left.append(f"{action.name} failed: {entry.error}")
            left = [a.name for a in closing[index + 1:]]
            if left:
                record.cleanup_left.append(f"not run: {', '.join(left)}")
            return False
    return True


def run(record: DrillRecord, actions: Sequence[Action], closing: Sequence[Action] = (), *,
        closing_into: list[Step] | None = None, conclude: Callable[[], None] | None = None,
        on_record: Callable[[DrillRecord], None] | None = None) -> DrillRecord:
    """Run ``actions`` until one fails, then ``conclude()`` (measure, verify), then always ``closing``
    (into ``record.rollback`` unless ``closing_into`` says otherwise). The outcome is passed only when every
    step and closing step passed and every verification held; ``on_record`` gets the record even when
    the drill raised (the readiness report needs it)."""
    began = time.monotonic()
    try:
        for action in actions:
            if perform(record.steps, action).outcome != "passed":
                break
        if conclude is not None:
            conclude()
    except BaseException as error:
        record.outcome = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        record.error = first_line(error)
        raise
    else:
        record.outcome = "passed"
    finally:
        try:
            with interrupts_wait():
                record.cleanup_confirmed = close(record.rollback if closing_into is None else closing_into,
                                                 closing, record)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while they ran: they finished, the run stops now
            record.outcome = "interrupted"
            raise
        finally:
            _finish(record, time.monotonic() - began)
            if on_record is not None:
                on_record(record)
    return record


def _finish(record: DrillRecord, total_s: float) -> None:
    record.finished_at = utc_now()
    steps = [*record.steps, *record.rollback]
    record.overhead_s = round(max(0.0, total_s - sum(s.duration_s or 0 for s in steps)), 3)
    failed = next((s for s in record.steps if s.outcome != "passed"), None)
    if failed is not None:
        record.failed_step, record.error = failed.name, record.error or failed.error
    if record.outcome == "passed" and (failed or not record.cleanup_confirmed
                                       or not all(v.ok for v in record.verifications)):
        record.outcome = "failed"
