"""A deadline and a byte budget for each HTTP request, enforced where httpx reads the socket.

httpx's ``read`` timeout bounds each chunk, not the request (encode/httpx#1450): headers or a body
trickled at one byte a second held a ``timeout_s: 3`` request for 150 s. Its bodies are unbounded too:
an endless body reached 8 GB. So every socket operation of a request gets the time left before the
request's deadline as its timeout, and every byte received counts against the request's budget. This
covers what the caller cannot see: headers, redirect hops (httpx reads their bodies whole) and the TLS
handshake. Decoded (decompressed) bytes are capped by the caller, which reads the body in chunks.

>>> with bounded(3.0, max_bytes=8 << 20) as budget:       # doctest: +SKIP
...     response = client.get(url)                          # ReadTimeout at 3 s, ReadError past 8 MiB + headers
>>> budget.over                                             # doctest: +SKIP
'deadline'
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpcore

from opsproof.errors import ProbeError, first_line

MAX_BODY_BYTES = 8 << 20  # 8 MiB of decoded body by default (``max_body_bytes`` on an HTTP target)
HEADROOM_BYTES = 1 << 20  # headers and redirect hops, on top of the body limit
READ_BYTES = 16 << 10  # per socket read (httpcore asks 64 KiB): one gzip chunk then expands to 16 MiB at most
_CURRENT = threading.local()  # httpx's sync client does its I/O on the calling thread


@dataclass
class Budget:
    deadline: float  # time.monotonic()
    max_bytes: int
    received: int = 0
    over: str | None = None  # "deadline" or "size" once exceeded

    def left(self, timeout: float | None, error=httpcore.ReadTimeout) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.over = "deadline"
            raise error("the request's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)

    def count(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.max_bytes:
            self.over = "size"
            raise httpcore.ReadError(f"more than {self.max_bytes} bytes received")


@contextmanager
def bounded(seconds: float, max_bytes: int) -> Iterator[Budget]:
    """Requests made on this thread inside the block share one deadline and one byte budget."""
    budget = Budget(time.monotonic() + seconds, max_bytes + HEADROOM_BYTES)
    previous = getattr(_CURRENT, "budget", None)
    _CURRENT.budget = budget
    try:
        yield budget
    finally:
        _CURRENT.budget = previous


def _budget() -> Budget | None:
    return getattr(_CURRENT, "budget", None)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _budget()
        if budget is None:
            return self._inner.read(max_bytes, timeout)
        data = self._inner.read(min(max_bytes, READ_BYTES), budget.left(timeout))
        budget.count(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        budget = _budget()
        self._inner.write(buffer, budget.left(timeout, httpcore.WriteTimeout) if budget else timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None, timeout: float | None = None):
        budget = _budget()
        timeout = budget.left(timeout, httpcore.ConnectTimeout) if budget else timeout
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with each operation bounded by the current request's budget."""

    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        budget = _budget()
        timeout = budget.left(timeout, httpcore.ConnectTimeout) if budget else timeout
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        budget = _budget()
        timeout = budget.left(timeout, httpcore.ConnectTimeout) if budget else timeout
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install(client) -> None:
    """Put the bounded backend under every transport of an ``httpx.Client``, its proxies' included.

    httpx does not expose the network backend: this reaches into its transports' ``_pool``.
    """
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        if pool is not None and not isinstance(pool._network_backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(pool._network_backend or httpcore.SyncBackend())


class BodyTooLarge(Exception):
    pass


def read_body(response, max_bytes: int) -> bytes:
    """The decoded body, refused past ``max_bytes``: a gzip bomb's expansion counts, not its size on the wire.

    A declared ``Content-Length`` over the limit is refused before reading; it may be absent or wrong, so
    the bytes themselves are counted too.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and response.request.method != "HEAD":
        raise BodyTooLarge(f"Content-Length {declared}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"more than {max_bytes} bytes")
    return bytes(body)


def request_error(exc: Exception, what: str, timeout_s: float, max_bytes: int, budget: Budget,
                  target_itself: bool) -> Exception:
    """The ProbeError a failed request becomes. Each failure to reach or read the target makes it unreachable
    (its other checks skip with this reason); only what may pass on its own (timeouts, refused or reset
    connections) is retryable under ``eventually``. Anything else is not a failure to reach: returned as is."""
    import httpx

    if isinstance(exc, BodyTooLarge) or budget.over == "size":
        return ProbeError(f"{what}: body larger than {max_bytes} bytes (read stopped there; the target's "
                          f"max_body_bytes sets the limit)", target_itself, retryable=False)
    if budget.over == "deadline" or isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__ if isinstance(exc, httpx.TimeoutException) else "ReadTimeout"
        return ProbeError(f"{what}: no response within {timeout_s:g} s ({kind})", target_itself)
    if isinstance(exc, httpx.TooManyRedirects):
        return ProbeError(f"{what}: {first_line(exc)}", target_itself, retryable=False)
    if isinstance(exc, httpx.TransportError):
        if _tls_failure(exc):
            return ProbeError(f"{what}: {type(exc).__name__}: {first_line(exc)}", target_itself, retryable=False,
                              tls=True)
        unreachable = target_itself and isinstance(exc, (httpx.ConnectError, httpx.NetworkError,
                                                         httpx.RemoteProtocolError))
        return ProbeError(f"{what}: {type(exc).__name__}: {first_line(exc)}", unreachable)
    if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL, OSError)):
        return ProbeError(f"{what}: {type(exc).__name__}: {first_line(exc)}", target_itself, retryable=False)
    return exc


def _tls_failure(exc: BaseException) -> bool:
    """Whether an ssl error lies under an httpx error (a certificate that does not verify, a failed handshake)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "[SSL" in str(exc)
