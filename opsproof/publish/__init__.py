"""What a finished run tells the world: alerts (``notify:``), a metrics textfile, a Pushgateway push.

``publish`` runs once the reports are written, from the run's results.json, and returns one
``Delivery`` record per destination; nothing it meets (a receiver down or hanging, a full disk, a
corrupt state file) raises or changes the verdict. No pytest here: fixtures/publish.py calls it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from opsproof.environment.notify import Notify
from opsproof.errors import first_line
from opsproof.publish import alerts, metrics, payloads
from opsproof.publish.alerts import RunFacts
from opsproof.publish.transport import Limits, Request, deliver, shown_url
from opsproof.record import Delivery

DEFAULT_LIMITS = Limits(*(Notify.model_fields[k].default for k in ("timeout", "attempts", "deadline")))


@dataclass(frozen=True)
class Outbound:
    """Where this run publishes: the environment's ``notify:`` and the metrics options."""

    notify: Notify | None = None
    textfile_dir: Path | None = None
    pushgateway: str | None = None

    @property
    def limits(self) -> Limits:
        n = self.notify
        return Limits(n.timeout, n.attempts, n.deadline) if n else DEFAULT_LIMITS


@dataclass
class Published:
    deliveries: list[Delivery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said in the terminal summary (a state file started afresh)


def publish(results: dict, facts: RunFacts, finished_at: datetime, outbound: Outbound, state_path: Path,
            redact) -> Published:
    """Write the textfile, then push and alert side by side under one deadline."""
    published = Published()
    requests: list[Request] = []
    if outbound.textfile_dir or outbound.pushgateway:
        registry = metrics.run_registry(results, facts.started_at, finished_at)
        if outbound.textfile_dir:
            published.deliveries.append(_write_textfile(outbound.textfile_dir, facts, registry))
        if outbound.pushgateway:
            requests.append(metrics.push_request(outbound.pushgateway, facts.environment, facts.suite, registry))
    if not outbound.notify:
        published.deliveries += deliver(requests, outbound.limits)
        return published
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{state_path}.lock", timeout=outbound.limits.deadline_s):
            published.deliveries += _alert(results, facts, outbound, state_path, requests, redact, published.notes)
    except Timeout:
        published.notes.append(f"alerts: {state_path} stayed locked by another run for "
                               f"{outbound.limits.deadline_s:g}s; nothing sent")
        published.deliveries += deliver(requests, outbound.limits)
    return published


def _write_textfile(directory: Path, facts: RunFacts, registry) -> Delivery:
    began = time.monotonic()
    path = directory / metrics.textfile_name(facts.environment, facts.suite)
    try:
        metrics.write_textfile(directory, facts.environment, facts.suite, registry)
    except OSError as error:
        return Delivery(channel="textfile", destination=str(path), outcome="failed", attempts=1,
                        duration_s=round(time.monotonic() - began, 3), error=first_line(error))
    return Delivery(channel="textfile", destination=str(path), outcome="sent", attempts=1,
                    duration_s=round(time.monotonic() - began, 3))


def _alert(results: dict, facts: RunFacts, outbound: Outbound, state_path: Path, requests: list[Request], redact,
           notes: list[str]) -> list[Delivery]:
    """Under the state's lock: decide per destination, send with the push, remember what arrived."""
    notify = outbound.notify
    tracked = _load(state_path, notes)
    tracked = alerts.observe(tracked, results["checks"], facts)
    now = datetime.now(timezone.utc)
    planned, idle = [], []
    for channel, destinations in (("alertmanager", notify.alertmanager), ("webhook", notify.webhook)):
        for destination in destinations.values():
            key = f"{channel}:{destination.name}"
            sends = alerts.plan(tracked, key, now, notify.repeat_after, notify.send == "every_run")
            if not sends:
                idle.append(Delivery(channel=channel, name=destination.name, outcome="nothing_to_send",
                                     destination=shown_url(destination.url)))
            elif channel == "alertmanager":
                planned.append((key, sends, payloads.alertmanager_request(
                    destination, sends, now, notify.expires_after(destination), redact)))
            else:
                planned.append((key, sends, payloads.webhook_request(destination, sends, facts, redact)))
    sent = deliver(requests + [request for _, _, request in planned], outbound.limits)
    for (key, sends, _), delivery in zip(planned, sent[len(requests):]):
        if delivery.outcome == "sent":
            alerts.delivered(tracked, key, sends, now)
    keys = [f"alertmanager:{n}" for n in notify.alertmanager] + [f"webhook:{n}" for n in notify.webhook]
    try:
        alerts.save(state_path, alerts.settled(tracked, keys))
    except OSError as error:
        notes.append(f"alerts: could not write {state_path} ({first_line(error)}); the next run sends these again")
    return sent + idle


def _load(state_path: Path, notes: list[str]) -> dict:
    if not state_path.exists():
        return {}
    try:
        return alerts.load(state_path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        notes.append(f"alerts: {state_path} unreadable ({first_line(error)}); starting afresh: failing checks are "
                     f"sent as new, earlier ones cannot be resolved from here")
        return {}
