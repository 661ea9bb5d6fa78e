"""The two ways opsproof stops short: bad input (exit 4) and a target it could not measure."""


class ConfigError(Exception):
    """An environment or waiver file is wrong; rendered as one line naming the file and key path."""

    def __init__(self, file: str, key_path: str, problem: str):
        self.file, self.key_path, self.problem = file, key_path, problem
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {problem}")


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
