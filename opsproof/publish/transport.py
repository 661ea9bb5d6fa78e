"""Send a run's outbound requests (alerts, a metrics push) side by side, each bounded three ways.

httpx bounds each read, not a response: a receiver that drips one byte a second holds it forever
(encode/httpx#1450). So every attempt runs under its own ``asyncio.timeout``, a destination gets at
most ``attempts`` tries, and all of them stop at one shared ``deadline``; what is still under way then
is cancelled and recorded as ``timed_out``. A failed delivery is a record, never an exception.

>>> deliver([Request("webhook", "chat", "https://hooks.example/T0/B0", b"{}")], Limits(5, 3, 30))  # doctest: +SKIP
[Delivery(channel='webhook', name='chat', destination='https://hooks.example', outcome='sent', ...)]
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from opsproof.errors import first_line
from opsproof.record import Delivery

BACKOFF_S = (0.5, 1.0, 2.0)  # waits between attempts (the last one repeats)
SHOWN_BODY_CHARS = 200  # of a refusal's response body, in the error


@dataclass(frozen=True)
class Limits:
    timeout_s: float  # one attempt, connect to last byte
    attempts: int
    deadline_s: float  # everything together


@dataclass(frozen=True)
class Request:
    """One POST (or PUT) to one destination, with what it carries counted for the record."""

    channel: str
    name: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    counts: dict[str, int] = field(default_factory=dict)  # firing / reminders / resolved


def shown_url(url: str) -> str:
    """``scheme://host:port``: never the credentials, path or query a receiver's URL may carry."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"
    except ValueError:
        return "(unparseable URL)"


@dataclass
class _Progress:
    attempts: int = 0
    error: str | None = None


def deliver(requests: list[Request], limits: Limits) -> list[Delivery]:
    """Send every request at once; one record each, in order, whatever happened (Ctrl-C: ``interrupted``)."""
    if not requests:
        return []
    progress = [_Progress() for _ in requests]
    began = time.monotonic()
    try:
        return asyncio.run(_deliver_all(requests, progress, limits))
    except KeyboardInterrupt:
        return [_record(r, p, "interrupted", began, p.error or "interrupted (Ctrl-C)")
                for r, p in zip(requests, progress)]


async def _deliver_all(requests: list[Request], progress: list[_Progress], limits: Limits) -> list[Delivery]:
    deadline = asyncio.get_running_loop().time() + limits.deadline_s
    async with httpx.AsyncClient(timeout=limits.timeout_s, follow_redirects=False) as client:
        return list(await asyncio.gather(*(_deliver_one(client, r, p, limits, deadline)
                                           for r, p in zip(requests, progress))))


async def _deliver_one(client: httpx.AsyncClient, request: Request, progress: _Progress, limits: Limits,
                       deadline: float) -> Delivery:
    began = time.monotonic()
    try:
        async with asyncio.timeout_at(deadline):
            outcome = await _attempts(client, request, progress, limits)
    except TimeoutError:
        last = f": {progress.error}" if progress.error else ""
        return _record(request, progress, "timed_out", began, f"deadline of {limits.deadline_s:g}s passed{last}")
    return _record(request, progress, outcome, began, progress.error if outcome != "sent" else None)


async def _attempts(client: httpx.AsyncClient, request: Request, progress: _Progress, limits: Limits) -> str:
    for attempt in range(limits.attempts):
        if attempt:
            await asyncio.sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])
        progress.attempts += 1
        try:
            async with asyncio.timeout(limits.timeout_s):
                response = await client.request(request.method, request.url, content=request.body,
                                                headers=request.headers)
        except TimeoutError:
            progress.error = f"no complete answer within {limits.timeout_s:g}s"
            continue
        except httpx.HTTPError as error:
            progress.error = f"{type(error).__name__}: {first_line(error)}"
            continue
        if response.is_success:
            progress.error = None
            return "sent"
        progress.error = f"HTTP {response.status_code}: {response.text[:SHOWN_BODY_CHARS].strip()}"
        if response.status_code < 500 and response.status_code not in (408, 429):
            return "failed"  # the receiver refused this request: sending it again will not change that
    return "failed"


def _record(request: Request, progress: _Progress, outcome: str, began: float, error: str | None) -> Delivery:
    return Delivery(channel=request.channel, name=request.name, destination=shown_url(request.url), outcome=outcome,
                    attempts=progress.attempts, duration_s=round(time.monotonic() - began, 3), error=error,
                    **request.counts)
