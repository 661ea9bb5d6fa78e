"""Which alerts a run sends where: one alert per gating failure, remembered between runs.

The state (one JSON file per environment and suite, beside the history) remembers each failing check:
its alert, since when it fails, and per destination what was last delivered and when. From it and
this run's records, ``plan`` decides, per destination:

- a gating failure not yet delivered there is sent as **new** (also after a failed delivery);
- one delivered at least ``repeat_after`` ago is sent again (a **reminder**; ``every_run``: each run);
- a check delivered as failing that ran again without gating (passed, warned, waived) is **resolved**;
- a check that did not run (skipped, deselected, an interrupted run) changes nothing.

``delivered`` then records what each destination accepted; a destination that failed is simply asked
again next run. Nothing here sends or renders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from opsproof.outcomes import Outcome

STATE_VERSION = 1
ALERTNAME = "OpsproofCheckFailed"


@dataclass(frozen=True)
class RunFacts:
    """What every alert of a run says besides its check."""

    environment: str
    suite: str
    started_at: datetime
    report: str  # path of report.html
    verdict: str


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    since: str  # ISO time the failure was first seen: Alertmanager's startsAt


@dataclass(frozen=True)
class Send:
    alert: Alert
    status: str  # firing | resolved
    reason: str  # new | reminder | resolved


@dataclass
class Tracked:
    """One check known to fail (or to have failed, until every destination has its resolution)."""

    alert: Alert
    failing: bool
    sent: dict[str, dict] = field(default_factory=dict)  # destination -> {"at": ISO, "labels": {...}}


def check_name(check_id: str) -> str:
    """``checks/test_http.py::test_health[api]`` -> ``test_health[api]``: the test as a run lists it."""
    return check_id.rsplit("::", 1)[-1]


def alert_for(record, facts: RunFacts, since: str) -> Alert:
    """``record``: a results.json check (dict). Labels identify the alert; annotations carry the evidence."""
    labels = {"alertname": ALERTNAME, "environment": facts.environment, "suite": facts.suite,
              "check": check_name(record["id"]), "target": record.get("where") or "", "severity": record["severity"]}
    annotations = {
        "summary": f"{labels['check']} {record['outcome']} on {labels['target'] or facts.environment} "
                   f"({record['severity']}, {facts.environment}/{facts.suite})",
        "evidence": record.get("message") or record["outcome"],
        "report": facts.report,
        "check_id": record["id"],
    }
    return Alert({k: v for k, v in labels.items() if v}, annotations, since)


def load(path: Path) -> dict[str, Tracked]:
    """The state a previous run left; a missing or unreadable file is an empty state (said by the caller)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
    return {key: Tracked(Alert(**entry["alert"]), entry["failing"], entry["sent"])
            for key, entry in data["alerts"].items()}


def save(path: Path, tracked: dict[str, Tracked]) -> None:
    """Written atomically: a temporary file beside it, then renamed over it."""
    data = {"version": STATE_VERSION, "alerts": {
        key: {"alert": vars(t.alert), "failing": t.failing, "sent": t.sent} for key, t in sorted(tracked.items())}}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def observe(previous: dict[str, Tracked], checks: list[dict], facts: RunFacts) -> dict[str, Tracked]:
    """The state after this run's checks: gating failures fail (since their first run), measured others pass."""
    tracked = dict(previous)
    for record in checks:
        old = tracked.get(record["id"])
        if record.get("gating"):
            since = old.alert.since if old and old.failing else facts.started_at.isoformat(timespec="seconds")
            tracked[record["id"]] = Tracked(alert_for(record, facts, since), True, dict(old.sent) if old else {})
        elif old and record["outcome"] != Outcome.SKIPPED.value:
            tracked[record["id"]] = Tracked(old.alert, False, dict(old.sent))
    return tracked


def plan(tracked: dict[str, Tracked], destination: str, now: datetime, repeat_after_s: float,
         every_run: bool = False) -> list[Send]:
    """What to send to one destination now."""
    sends = []
    for entry in tracked.values():
        last = entry.sent.get(destination)
        if last and (not entry.failing or last["labels"] != entry.alert.labels):
            # resolved; or its labels changed (a new severity): the alert as sent ends, the new one starts
            sends.append(Send(Alert(last["labels"], entry.alert.annotations, entry.alert.since), "resolved",
                              "resolved"))
            last = None
        if not entry.failing:
            continue
        if last is None:
            sends.append(Send(entry.alert, "firing", "new"))
        elif every_run or now - datetime.fromisoformat(last["at"]) >= timedelta(seconds=repeat_after_s):
            sends.append(Send(entry.alert, "firing", "reminder"))
    return sends


def delivered(tracked: dict[str, Tracked], destination: str, sends: list[Send], now: datetime) -> None:
    """A destination accepted ``sends``: remember when, and forget what it now knows resolved."""
    status = {_key(s.alert.labels): s.status for s in sends}
    for entry in tracked.values():
        last = entry.sent.get(destination)
        if last and status.get(_key(last["labels"])) == "resolved":
            del entry.sent[destination]
        if entry.failing and status.get(_key(entry.alert.labels)) == "firing":
            entry.sent[destination] = {"at": now.isoformat(timespec="seconds"), "labels": entry.alert.labels}


def _key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)


def settled(tracked: dict[str, Tracked], destinations: list[str]) -> dict[str, Tracked]:
    """Drop destinations no longer configured, and checks that pass with every resolution delivered."""
    kept = {}
    for key, entry in tracked.items():
        entry.sent = {d: s for d, s in entry.sent.items() if d in destinations}
        if entry.failing or entry.sent:
            kept[key] = entry
    return kept
