"""The requests alerts travel in: Alertmanager's ``POST /api/v2/alerts`` and a chat-compatible webhook.

Alertmanager (API v2, 0.25): the body is a JSON array; ``labels`` identify an alert, a firing alert
lives until its ``endsAt``, and one posted with ``endsAt`` at or before now is resolved. Without an
``endsAt`` Alertmanager would resolve it after ``resolve_timeout`` (5m), long before the next nightly
run, so a firing alert carries ``endsAt = now + expires_after`` and each reminder renews it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from opsproof.environment.notify import AlertmanagerDestination, Destination
from opsproof.publish.alerts import RunFacts, Send
from opsproof.publish.transport import Request

JSON = {"Content-Type": "application/json"}
SHOWN = {"new": "FAILING", "reminder": "STILL FAILING", "resolved": "RESOLVED"}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def alertmanager_alerts(sends: list[Send], now: datetime, expires_after_s: float) -> list[dict]:
    ends = {"firing": _rfc3339(now + timedelta(seconds=expires_after_s)), "resolved": _rfc3339(now)}
    return [{"labels": s.alert.labels, "annotations": s.alert.annotations,
             "startsAt": _rfc3339(datetime.fromisoformat(s.alert.since)), "endsAt": ends[s.status]} for s in sends]


def alertmanager_request(destination: AlertmanagerDestination, sends: list[Send], now: datetime,
                         expires_after_s: float, redact: Callable[[str], str]) -> Request:
    body = json.dumps(alertmanager_alerts(sends, now, expires_after_s))
    return Request("alertmanager", destination.name, f"{destination.url.rstrip('/')}/api/v2/alerts",
                   redact(body).encode(), {**JSON, **_headers(destination)}, counts=_counts(sends))


def webhook_text(sends: list[Send], facts: RunFacts) -> str:
    """Slack/Mattermost ``text``: the run's verdict, one line per alert, where the report is."""
    lines = [f"opsproof {facts.environment}/{facts.suite}: {facts.verdict}"]
    for send in sends:
        labels, annotations = send.alert.labels, send.alert.annotations
        since = f" (since {send.alert.since})" if send.reason == "reminder" else ""
        head = f"{SHOWN[send.reason]}{since} {labels.get('severity', '')} {labels.get('check', '')}"
        lines.append(head if send.status == "resolved" else f"{head}: {annotations.get('evidence', '')}")
    lines.append(f"report: {facts.report}")
    return "\n".join(lines)


def webhook_request(destination: Destination, sends: list[Send], facts: RunFacts,
                    redact: Callable[[str], str]) -> Request:
    body = {"text": webhook_text(sends, facts), "opsproof": {
        "environment": facts.environment, "suite": facts.suite, "verdict": facts.verdict, "report": facts.report,
        "alerts": [{"status": s.status, "reason": s.reason, "since": s.alert.since, "labels": s.alert.labels,
                    "annotations": s.alert.annotations} for s in sends]}}
    return Request("webhook", destination.name, destination.url, redact(json.dumps(body)).encode(),
                   {**JSON, **_headers(destination)}, counts=_counts(sends))


def _headers(destination: Destination) -> dict[str, str]:
    return {name: value.get_secret_value() for name, value in destination.headers.items()}


def _counts(sends: list[Send]) -> dict[str, int]:
    reasons = [s.reason for s in sends]
    return {"firing": reasons.count("new"), "reminders": reasons.count("reminder"),
            "resolved": reasons.count("resolved")}
