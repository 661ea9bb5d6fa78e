"""Eventually: retries until pass or deadline, every attempt recorded, a pass after retries warned."""

from __future__ import annotations

import re
import time

import pytest


def ready_environment(url: str, **eventually) -> dict:
    target = {"url": url, "timeout_s": 1, "ready": {"path": "/ready", "components": ["database", "cache", "migrations"]},
              "health": {"path": "/health", "status": 200}}
    if eventually:
        target["eventually"] = eventually
    return {"tier": "sandbox", "http": {"api": target}}


@pytest.fixture
def warming_up(sandbox, api_faults):
    """The API reports migrations unready for its next 3 readiness requests, like a service warming up."""
    api_faults(unready="migrations", unready_requests=3)


def test_a_pass_after_retries_is_warned_with_every_attempt_recorded(sandbox, write_env, run_checks, warming_up):
    run = run_checks(write_env(ready_environment(sandbox.api_url, within_s=10, every_s=0.4)), "-k", "ready")
    record = run.record("test_ready_components_are_ready")
    attempts = next(m for m in record["measurements"] if m["measure"] == "attempts")
    outcomes = [a["outcome"] for a in attempts["value"]]
    assert run.ret == 0 and record["outcome"] == "warned"
    assert outcomes == ["failed", "failed", "failed", "passed"]
    over_s = float(re.fullmatch(r"passed after 4 attempts over (\d\.\d) s", record["message"]).group(1))
    assert 3 * 0.4 <= attempts["value"][-1]["at_s"] <= over_s + 0.05
    assert attempts["value"][0]["message"] == (
        "unready_components ({'migrations': 'injected fault'}) == {} on http.api")
    assert [a["at_s"] for a in attempts["value"]] == sorted(a["at_s"] for a in attempts["value"])


def test_a_first_time_pass_stays_passed(sandbox, write_env, run_checks):
    run = run_checks(write_env(ready_environment(sandbox.api_url, within_s=5)), "-k", "ready")
    record = run.record("test_ready_components_are_ready")
    assert record["outcome"] == "passed" and record["message"] == ""
    assert next(m for m in record["measurements"] if m["measure"] == "attempts")["value"][0]["attempt"] == 1


def test_refused_target_stops_before_the_deadline_and_skips_the_rest(write_env, run_checks, refused_port):
    environment = ready_environment(f"http://127.0.0.1:{refused_port}")
    started = time.monotonic()
    run = run_checks(write_env(environment), "--eventually", "2/0.5", "-k", "health_returns or ready")
    elapsed_s = time.monotonic() - started
    first = run.record("test_health_returns_expected_status")
    attempts = next(m for m in first["measurements"] if m["measure"] == "attempts")["value"]
    assert run.ret == 1 and first["outcome"] == "error"
    assert first["message"].startswith("could not measure on http.api: GET /health: ConnectError")
    assert re.search(rf"\(after {len(attempts)} attempts over 1\.\d s, within_s 2\)$", first["message"])
    assert 3 <= len(attempts) <= 4 and attempts[-1]["at_s"] < 2
    ready = run.record("test_ready_components_are_ready")
    assert ready["outcome"] == "skipped" and ready["message"].startswith("http.api is unreachable: GET /health")
    assert elapsed_s < 2 + 3, f"a refused target took {elapsed_s:.1f} s"


def test_silent_target_gives_up_when_another_timeout_cannot_fit(write_env, run_checks, silent_port):
    started = time.monotonic()
    run = run_checks(write_env(ready_environment(f"http://127.0.0.1:{silent_port}", within_s=3.5, every_s=0.5)),
                     "-k", "health_returns")
    attempts = next(m for m in run.record("test_health_returns_expected_status")["measurements"]
                    if m["measure"] == "attempts")["value"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert time.monotonic() - started < 3.5 + 3


def test_bad_eventually_option_is_a_usage_error(write_env, run_checks, sandbox):
    run = run_checks(write_env(ready_environment(sandbox.api_url)), "--eventually", "soon")
    assert run.ret == 4 and "--eventually soon: expected WITHIN_S or WITHIN_S/EVERY_S" in run.output
