"""HTTP probe: one request, timed, with the response kept for the checks to judge.

>>> probe = HttpProbe("http://127.0.0.1:8080", timeout_s=2)      # doctest: +SKIP
>>> response = probe.get("/health")                               # doctest: +SKIP
>>> response.status_code, response.field("services.database")     # doctest: +SKIP
(200, 'connected')
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

from opsproof.errors import ProbeError, first_line

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


class HttpProbe:
    """One pooled httpx client per target; every request bounded by ``timeout_s``."""

    def __init__(self, base_url: str, timeout_s: float, verify_tls: bool = True, headers=None):
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self._verify = verify_tls
        self._headers = dict(headers or {})
        self._client = None

    def _http(self):
        if self._client is None:
            import httpx  # imported lazily: ~120 ms, only when an environment has HTTP targets

            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout_s),
                verify=self._verify,
                headers=self._headers,
                follow_redirects=False,
            )
        return self._client

    def get(self, path: str) -> HttpResponse:
        return self.request("GET", path)

    def request(self, method: str, path: str) -> HttpResponse:
        import httpx

        url = urljoin(self.base_url, path.lstrip("/"))
        started = time.perf_counter()
        try:
            response = self._http().request(method, url)
        except httpx.TimeoutException as exc:
            raise ProbeError(
                f"{method} {path}: no response within {self.timeout_s:g} s ({type(exc).__name__})", unreachable=True
            ) from None
        except httpx.TransportError as exc:
            unreachable = isinstance(exc, (httpx.ConnectError, httpx.NetworkError))
            raise ProbeError(f"{method} {path}: {type(exc).__name__}: {first_line(exc)}", unreachable) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            body = response.json()
        except ValueError:
            body = MISSING
        return HttpResponse(url, response.status_code, elapsed_ms, dict(response.headers), response.text, body)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
