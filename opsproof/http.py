"""HTTP probe: requests timed, with the response kept for the checks to judge.

>>> probe = HttpProbe("http://127.0.0.1:8080", timeout_s=2)      # doctest: +SKIP
>>> response = probe.get("/health")                               # doctest: +SKIP
>>> response.status_code, response.field("services.database")     # doctest: +SKIP
(200, 'connected')
>>> probe.latency("/health", samples=10)                          # doctest: +SKIP
{'samples': 10, 'p50_ms': 1.9, 'p95_ms': 3.1, 'max_ms': 3.4}
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

from opsproof.errors import ProbeError
from opsproof.httpbounds import MAX_BODY_BYTES, bounded, install, read_body, request_error

MISSING = object()


@dataclass(frozen=True)
class HttpResponse:
    url: str
    status_code: int
    elapsed_ms: float
    headers: dict[str, str]
    text: str
    _json: object = field(default=MISSING, repr=False)

    @property
    def json(self):
        """The parsed body, or ``None`` when it is not JSON."""
        return None if self._json is MISSING else self._json

    def field(self, dotted_path: str, default=MISSING):
        """``services.database`` -> body["services"]["database"]; ``MISSING`` when absent."""
        node = self.json
        for part in dotted_path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    def header(self, name: str) -> str | None:
        """Header lookup without regard to case (``content-type`` finds ``Content-Type``)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def matches(self, pattern: str) -> bool:
        return re.search(pattern, self.text) is not None


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the value at or below which ``pct`` % of the samples fall."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


_CONTEXT_LOCK = threading.Lock()


def tls_context(ca_file: str | None = None):
    """One verifying SSL context per CA bundle, shared by every client: building one costs ~60 ms,
    so concurrent first requests must not each build their own."""
    with _CONTEXT_LOCK:
        return _tls_context(ca_file)


@functools.lru_cache(maxsize=None)
def _tls_context(ca_file: str | None):
    import ssl

    import httpx

    return ssl.create_default_context(cafile=ca_file) if ca_file else httpx.create_ssl_context()


class HttpProbe:
    """One pooled httpx client per target; every request bounded by ``timeout_s`` from its first byte sent to
    its last received, and its body by ``max_body_bytes`` (decompressed).

    Without an explicit ``proxy`` httpx honours ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``.
    """

    def __init__(self, base_url: str, timeout_s: float, verify_tls: bool = True, headers=None, *,
                 auth: tuple[str, str] | None = None, follow_redirects: bool = False, proxy: str | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self._verify = verify_tls
        self._headers = dict(headers or {})
        self._auth = auth
        self._follow = follow_redirects
        self._proxy = proxy
        self.max_body_bytes = max_body_bytes
        self._client = None

    def _http(self):
        if self._client is None:
            from urllib.request import getproxies  # the proxies httpx reads from the environment

            import httpx  # imported lazily: ~120 ms, only when an environment has HTTP targets

            verify = tls_context() if self._verify is True else self._verify
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout_s),
                verify=verify,
                headers=self._headers,
                auth=self._auth,
                follow_redirects=self._follow,
                proxy=self._proxy,
                # no proxy, its own or from the environment (httpx ignores HTTP_PROXY beside a transport
                # given): the pool shared by every target with the same TLS trust
                transport=None if self._proxy or getproxies() else shared_transport(verify),
            )
            install(self._client)  # a deadline for each whole request and a byte budget (opsproof.httpbounds)
        return self._client

    def get(self, path: str) -> HttpResponse:
        return self.request("GET", path)

    def request(self, method: str, path: str, timeout_s: float | None = None, target_itself: bool = True,
                content: str | None = None, json_body=None, headers: dict[str, str] | None = None) -> HttpResponse:
        """One request; ``path`` may be a full URL. ``target_itself=False``: a failure does not make
        the target unreachable (an external dependency's outage is not the target's)."""
        url = urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path
        timeout_s = timeout_s or self.timeout_s
        client = self._http()  # built outside the timed span: response times measure the server, not set-up
        started = time.perf_counter()
        with bounded(timeout_s, self.max_body_bytes) as budget:  # the whole request, headers to last byte
            try:
                with client.stream(method, url, timeout=timeout_s, content=content, json=json_body,
                                   headers=headers) as response:
                    data = read_body(response, self.max_body_bytes)
            except Exception as exc:  # noqa: BLE001 - each failure to reach or read becomes a ProbeError
                raise request_error(exc, f"{method} {path}", timeout_s, self.max_body_bytes, budget,
                                    target_itself) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        text = data.decode(response.encoding or "utf-8", errors="replace")
        try:
            body = json.loads(data)
        except ValueError:
            body = MISSING
        return HttpResponse(url, response.status_code, elapsed_ms, dict(response.headers), text, body)

    def latency(self, path: str, samples: int) -> dict:
        """``samples`` sequential GETs of ``path``: p50, p95 and max response time in ms."""
        times = [self.get(path).elapsed_ms for _ in range(samples)]
        return {"samples": samples, "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
                "max_ms": max(times)}

    def close(self) -> None:
        """Closes the client; a shared pool stays open for the other targets (``close_shared_transports``)."""
        if self._client is not None:
            if self._client._transport not in _TRANSPORTS.values():
                self._client.close()
            self._client = None


_TRANSPORTS: dict = {}  # TLS trust (True, False or an SSLContext) -> the connection pool of every target using it


def shared_transport(verify):
    """One connection pool per TLS trust, shared by every target's client: targets behind one origin reuse
    its kept-alive connections instead of each opening (and the server accepting) its own. Each request
    still carries its target's headers, auth and deadline; the pool never queues (no connection limit),
    so a hung target's connections cannot hold up another target's request."""
    import httpx

    with _CONTEXT_LOCK:
        transport = _TRANSPORTS.get(verify)
        if transport is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            transport = _TRANSPORTS[verify] = httpx.HTTPTransport(verify=verify, limits=limits)
        return transport


def close_shared_transports() -> None:
    """Close the shared pools (the end of a run): their idle connections are released, not left to exit."""
    with _CONTEXT_LOCK:
        transports = list(_TRANSPORTS.values())
        _TRANSPORTS.clear()
    for transport in transports:
        transport.close()
