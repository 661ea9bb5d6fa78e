"""Soak: the selected checks re-run every interval for a window against the real demo API; any failed sample
fails the check, naming its time and sample; every sample is in the record; refused with eventually."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from opsproof.metrics import parse
from opsproof.thresholds import show_value

HEALTH = "health_returns or health_responds"


def health_environment(url: str, **target) -> dict:
    return {"tier": "sandbox", "http": {"api": {"url": url, "timeout_s": 3, **target,
                                                "health": {"path": "/health", "status": 200,
                                                           "response_time_ms": {"warn": 2000, "crit": 5000}}}}}


def samples_of(record: dict) -> list[dict]:
    return next(m for m in record["measurements"] if m["measure"] == "soak_samples")["value"]


def test_a_steady_api_passes_every_sample_and_each_is_recorded(sandbox, write_env, run_checks):
    started = time.monotonic()
    run = run_checks(write_env(health_environment(sandbox.api_url)), "--soak", "3s/1s", "-k", HEALTH)
    elapsed_s = time.monotonic() - started
    record = run.record("test_health_returns_expected_status")
    samples = samples_of(record)
    assert run.ret == 0 and record["outcome"] == "passed", run.output
    assert [s["sample"] for s in samples] == [1, 2, 3] and {s["outcome"] for s in samples} == {"passed"}
    assert all(s["values"]["status_code"] == 200 for s in samples)
    assert samples_of(run.record("test_health_responds_within_threshold"))[2]["values"]["response_time_ms"] > 0
    assert re.search(r"soak: sample 3 of 3 done in \d+\.\d\d s, 0 check\(s\) failing, 0m00s left", run.output)
    assert 2 <= elapsed_s < 2 + 15, f"a 3s/1s soak took {elapsed_s:.1f} s"  # two 1 s waits, then in-process start-up


def test_a_soak_across_modules_with_skipped_checks_sets_up_and_tears_down_cleanly(sandbox, write_env, run_checks):
    """test_http's ready check skips (not configured) between the health check and a test_metrics check."""
    counters = {'errors_total{status=~"9.."}': {"crit": 0}}
    environment = health_environment(sandbox.api_url, metrics={"counters": counters})
    run = run_checks(write_env(environment), "--soak", "2s/1s", "-k", "health_returns or ready_components or counters")
    assert run.ret == 0, run.output
    outcomes = {r["check"]: (r["outcome"], len(samples_of(r)) if r["outcome"] != "skipped" else 0)
                for r in run.results["checks"]}
    assert outcomes == {"test_health_returns_expected_status": ("passed", 2),
                        "test_ready_components_are_ready": ("skipped", 0),
                        "test_metrics_counters_within_threshold": ("passed", 2)}


def test_the_api_turning_degraded_at_sample_5_fails_naming_sample_5(sandbox, write_env, run_checks, api_faults):
    api_faults(healthy_requests=4)  # samples 1-4 see a healthy API, then every health request answers 503
    run = run_checks(write_env(health_environment(sandbox.api_url, soak="6s/1s")), "-k", HEALTH)
    record = run.record("test_health_returns_expected_status")
    samples = samples_of(record)
    assert run.ret == 1 and record["outcome"] == "failed"
    assert re.fullmatch(r"status_code \(503\) == 200 on http\.api at \d\d:\d\d:\d\d \(sample 5 of 6\)",
                        record["message"]), record["message"]
    assert [s["outcome"] for s in samples] == ["passed"] * 4 + ["failed"] * 2
    assert record["message"].split(" at ")[1][:8] == samples[4]["at"][11:19]
    assert re.search(r"soak: sample 6 of 6 done in \S+ s, 1 check\(s\) failing", run.output)
    assert "(sample 5 of 6)" in run.output  # the terminal shows the same evidence line


def test_a_check_soaked_alone_measures_afresh_in_every_sample(sandbox, write_env, run_checks):
    """One soaked check is its own next item: each sample still sets its fixtures up again and measures."""
    environment = health_environment(sandbox.api_url, soak="3s/1s")
    environment["http"]["api"]["latency"] = {"path": "/ready", "samples": 1, "p95_ms": {"crit": 5000}}

    def ready_requests() -> float:
        scraped = httpx.get(f"{sandbox.api_url}/metrics", timeout=5).text
        return sum(value for name, labels, value in parse(scraped).samples
                   if name == "http_requests_total" and labels.get("path") == "/ready")

    before = ready_requests()
    run = run_checks(write_env(environment), "-k", "latency_p95")
    record = run.record("test_latency_p95_within_threshold")
    assert run.ret == 0 and [s["outcome"] for s in samples_of(record)] == ["passed"] * 3, run.output
    assert ready_requests() - before == 3


def test_the_worst_value_follows_the_first_failure(sandbox, write_env, run_checks, api_faults):
    """Latency crosses the limit at sample 1 and is worse later: both the first failure and the worst show."""
    environment = health_environment(sandbox.api_url, soak="3s/1s")
    environment["http"]["api"]["latency"] = {"path": "/health", "samples": 1, "p95_ms": {"crit": 100}}
    api_faults(delay_ms=150)
    run = run_checks(write_env(environment), "-k", "latency_p95")
    record = run.record("test_latency_p95_within_threshold")
    values = [s["values"]["p95_latency_ms"] for s in samples_of(record)]
    samples = samples_of(record)
    assert record["outcome"] == "failed" and len(values) == 3
    first = f"p95_latency_ms ({show_value(values[0])}) <= 100 on http.api (crit) at {samples[0]['at'][11:19]} " \
            f"(sample 1 of 3)"
    worst = max(values)
    if worst == values[0]:
        assert record["message"] == first
    else:  # a later sample was slower: it is named too
        at = values.index(worst)
        assert record["message"] == (f"{first}; worst p95_latency_ms ({show_value(worst)}) at "
                                     f"{samples[at]['at'][11:19]} (sample {at + 1})")


def test_abort_on_p0_stops_at_the_first_p0_failure(sandbox, write_env, run_checks, api_faults):
    api_faults(healthy_requests=1)
    started = time.monotonic()
    run = run_checks(write_env(health_environment(sandbox.api_url)), "--soak", "20s/1s", "--soak-abort-on", "p0",
                     "-k", HEALTH)
    elapsed_s = time.monotonic() - started
    record = run.record("test_health_returns_expected_status")
    assert run.ret == 1 and len(samples_of(record)) == 2
    stopped = "soak stopped at sample 2 of 20: p0 failure of test_health_returns_expected_status[api] " \
              "(--soak-abort-on p0)"
    assert re.fullmatch(rf"status_code \(503\) == 200 on http\.api at \S+ \(sample 2 of 20\); {re.escape(stopped)}",
                        record["message"]), record["message"]
    assert stopped in run.output
    assert elapsed_s < 15, f"an aborted 20 s soak took {elapsed_s:.1f} s"


def test_soak_and_eventually_on_one_target_are_rejected_at_load(sandbox, write_env, run_checks):
    environment = health_environment(sandbox.api_url, soak="1m/10s", eventually={"within_s": 30})
    path = write_env(environment)
    run = run_checks(path, "-k", HEALTH)
    assert run.ret == 4 and run.run_dir is None
    assert "http.api" in run.output and "soak and eventually cannot be combined on one target" in run.output


@pytest.mark.parametrize("args, says", [
    (("--soak", "1m/10s", "--eventually", "30"), "--soak and --eventually cannot be combined"),
    (("--soak", "10s/1m"), "--soak 10s/1m: every_s (60 s) is longer than window_s (10 s)"),
    (("--soak", "10m"), "--soak 10m: '10m' is not WINDOW/EVERY"),
])
def test_a_soak_that_cannot_mean_anything_is_a_usage_error(sandbox, write_env, run_checks, args, says):
    run = run_checks(write_env(health_environment(sandbox.api_url)), *args, "-k", HEALTH)
    assert run.ret == 4 and says in run.output


def test_soak_with_a_target_that_retries_is_refused(sandbox, write_env, run_checks):
    run = run_checks(write_env(health_environment(sandbox.api_url, eventually={"within_s": 5})), "--soak", "3s/1s")
    assert run.ret == 4 and "--soak cannot be combined with http.api.eventually" in run.output
