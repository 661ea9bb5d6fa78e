"""The two ways opsproof stops short: bad input (exit 4) and a target it could not measure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem (or warning) of an environment file: the key path, what is wrong, the YAML line if known."""

    key_path: str
    problem: str
    line: int | None = None

    def shown(self, file: str) -> str:
        """``environments/x.yaml:12: http.api.timeout_s: at most 1h``."""
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.key_path}: {self.problem}" if self.key_path else f"{where}: {self.problem}"


class ConfigError(Exception):
    """An environment or waiver file is wrong; rendered as one line naming the file and key path.

    With ``more``, every problem found at once: a first line counting them, then one line each with
    its file, line and key path.
    """

    def __init__(self, file: str, key_path: str, problem: str, line: int | None = None, more: tuple = ()):
        self.file, self.key_path, self.problem, self.line = file, key_path, problem, line
        self.problems = [Problem(key_path, problem, line), *more]
        if more:
            lines = [f"{file}: {len(self.problems)} problems"] + [f"  {p.shown(file)}" for p in self.problems]
            super().__init__("\n".join(lines))
        else:
            where = f"{file}: {key_path}" if key_path else file
            super().__init__(f"{where}: {problem}")

    @classmethod
    def of(cls, file: str, problems: list[Problem]) -> ConfigError:
        first, *more = problems
        return cls(file, first.key_path, first.problem, first.line, tuple(more))


class ProbeError(Exception):
    """A probe could not take its measurement (refused, timed out, protocol error).

    Checks let it propagate: the outcome is *error*, which gates like a failure. ``unreachable``
    says the target itself did not answer, so its other checks are skipped rather than each
    waiting for its own timeout. ``retryable=False`` stops ``eventually`` from retrying what waiting
    cannot fix.
    """

    def __init__(self, message: str, unreachable: bool = False, *, retryable: bool = True, tls: bool = False):
        super().__init__(message)
        self.unreachable = unreachable
        self.retryable = retryable  # False: waiting cannot help (a missing CA, a body over the limit)
        self.tls = tls  # the TLS handshake failed: the TLS checks still read the certificate


class SandboxError(RuntimeError):
    """The sandbox could not start or stop something; the message says what and how to fix it."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text: client errors can run to many lines."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
