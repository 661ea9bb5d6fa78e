"""What to send when, from the state between runs; and ``notify:`` errors caught when the file loads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from opsproof.environment import load_environment
from opsproof.errors import ConfigError
from opsproof.publish import alerts

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
AM = "alertmanager:am"


def facts(at: datetime) -> alerts.RunFacts:
    return alerts.RunFacts("prod", "nightly", at, "/reports/prod/run/report.html", "FAIL")


def check(outcome: str, severity: str = "p1", name: str = "test_x[api]") -> dict:
    return {"id": f"checks/test_x.py::{name}", "where": "http.api", "severity": severity, "outcome": outcome,
            "gating": outcome in ("failed", "error"), "message": f"status_code (500) == 200 on http.api [{outcome}]"}


def run(tracked: dict, checks: list[dict], at: datetime, repeat_after_s: float = 3600, every_run: bool = False):
    """One run: observe, plan for one destination, and suppose it accepted everything."""
    tracked = alerts.observe(tracked, checks, facts(at))
    sends = alerts.plan(tracked, AM, at, repeat_after_s, every_run)
    alerts.delivered(tracked, AM, sends, at)
    return alerts.settled(tracked, [AM]), [(s.status, s.reason, s.alert.labels["severity"]) for s in sends]


def test_new_failure_then_quiet_then_reminder_then_resolution():
    tracked, sent = run({}, [check("failed")], T0)
    assert sent == [("firing", "new", "p1")]
    tracked, sent = run(tracked, [check("failed")], T0 + timedelta(minutes=59))
    assert sent == []
    tracked, sent = run(tracked, [check("error")], T0 + timedelta(hours=1))
    assert sent == [("firing", "reminder", "p1")]
    assert tracked["checks/test_x.py::test_x[api]"].alert.since == T0.isoformat()  # still the first run's
    tracked, sent = run(tracked, [check("passed")], T0 + timedelta(hours=2))
    assert sent == [("resolved", "resolved", "p1")] and tracked == {}


def test_a_check_that_did_not_run_changes_nothing():
    tracked, _ = run({}, [check("failed")], T0)
    for absent in ([], [check("skipped")]):
        tracked, sent = run(tracked, absent, T0 + timedelta(minutes=5))
        assert sent == [] and tracked["checks/test_x.py::test_x[api]"].failing


def test_waived_or_no_longer_gating_resolves():
    tracked, _ = run({}, [check("failed")], T0)
    _, sent = run(tracked, [check("waived")], T0 + timedelta(minutes=5))
    assert sent == [("resolved", "resolved", "p1")]


def test_new_severity_ends_the_alert_as_sent_and_starts_the_new_one():
    tracked, _ = run({}, [check("failed", "p2")], T0)
    tracked, sent = run(tracked, [check("failed", "p1")], T0 + timedelta(minutes=5))
    assert sent == [("resolved", "resolved", "p2"), ("firing", "new", "p1")]
    assert tracked["checks/test_x.py::test_x[api]"].sent[AM]["labels"]["severity"] == "p1"


def test_every_run_sends_each_failure_each_run():
    tracked, _ = run({}, [check("failed")], T0, every_run=True)
    _, sent = run(tracked, [check("failed")], T0 + timedelta(minutes=1), every_run=True)
    assert sent == [("firing", "reminder", "p1")]


def test_an_undelivered_alert_is_new_again_next_run_and_a_removed_destination_is_forgotten():
    tracked = alerts.observe({}, [check("failed")], facts(T0))
    assert [s.reason for s in alerts.plan(tracked, AM, T0, 3600)] == ["new"]  # not delivered: no delivered()
    assert [s.reason for s in alerts.plan(tracked, AM, T0 + timedelta(minutes=1), 3600)] == ["new"]
    alerts.delivered(tracked, "webhook:gone", alerts.plan(tracked, "webhook:gone", T0, 3600), T0)
    assert alerts.settled(tracked, [AM])["checks/test_x.py::test_x[api]"].sent == {}


def test_state_survives_a_round_trip(tmp_path):
    tracked, _ = run({}, [check("failed")], T0)
    alerts.save(tmp_path / "notify-nightly.json", tracked)
    assert alerts.load(tmp_path / "notify-nightly.json") == tracked
    assert [p.name for p in tmp_path.iterdir()] == ["notify-nightly.json"]


@pytest.mark.parametrize(("notify", "key_path", "problem"), [
    ({}, "notify", "name at least one destination under alertmanager: or webhook:"),
    ({"webhook": {"chat": {"url": "hooks.example.com"}}}, "notify.webhook.chat.url",
     "must be an http:// or https:// URL"),
    ({"alertmanager": {"am": {"url": "http://am:9093", "expires_after": "30m"}}, "repeat_after": "1h"}, "notify",
     "alertmanager.am.expires_after (1800s) must be above repeat_after (3600s)"),
    ({"webhook": {"chat": {"url": "http://h"}}, "timeout": "1m", "deadline": "30s"}, "notify",
     "timeout (60s) must not be above deadline (30s)"),
    ({"webhook": {"chat": {"url": "http://h"}}, "repeat_after": "daily"}, "notify.repeat_after",
     "'daily' is not a duration like 24h, 30m, 1h30m or 7d"),
    ({"webhook": {"chat": {"url": "http://h", "secret": "x"}}}, "notify.webhook.chat.secret", "unknown key"),
])
def test_notify_errors_name_the_file_and_key(tmp_path, notify, key_path, problem):
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump({"name": "prod", "tier": "production", "notify": notify}))
    with pytest.raises(ConfigError) as error:
        load_environment(path, variables={})
    assert error.value.key_path == key_path
    assert error.value.problem.startswith(problem)


def test_notify_variables_and_headers_are_secrets(tmp_path):
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump({"name": "prod", "tier": "production", "notify": {
        "webhook": {"chat": {"url": "https://hooks.example.com/services/${CHAT_HOOK}"}},
        "alertmanager": {"am": {"url": "http://am:9093", "headers": {"Authorization": "Bearer am-literal-1"}}}}}))
    loaded = load_environment(path, variables={"CHAT_HOOK": "T0/B0/hook-path-secret"})
    assert {"T0/B0/hook-path-secret", "Bearer am-literal-1"} <= loaded.secrets
