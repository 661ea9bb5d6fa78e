"""The run's standard output, which may go away before the run ends.

A reader that quits early (``opsproof run | head``, a log pipe whose reader died) made pytest's terminal
writer fail on ``BrokenPipeError`` mid-run: an internal error, and report.html and junit.xml never written.
The run's output is for people; its verdict and reports must not depend on someone still reading it.
"""

from __future__ import annotations

import os


class ReaderMayQuit:
    """Wraps a text stream: once its reader is gone, writes go nowhere instead of raising."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        self._stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the run's output

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
