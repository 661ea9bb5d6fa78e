"""Metrics and PromQL checks against a fresh demo API and a real Prometheus (Debian's package) scraping it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest

from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port


@pytest.fixture(scope="module")
def fresh_api(sandbox):
    """A demo API of its own, so its counters start at zero whatever other tests did to the sandbox's."""
    port = free_port()
    env = {**os.environ, **{k: v for k, v in sandbox.variables.items() if k.startswith(("SANDBOX_PG", "SANDBOX_REDIS"))}}
    process = subprocess.Popen([sys.executable, "-m", "opsproof.sandbox.api", "--port", str(port)], env=env)
    wait_for_port(port, 20, "the demo API", process)
    url = f"http://127.0.0.1:{port}"
    httpx.get(f"{url}/health", timeout=5)  # sets the database_up and cache_up gauges
    yield url
    stop_pid(process.pid)
    process.wait()


@pytest.fixture(scope="module")
def prometheus(fresh_api, tmp_path_factory):
    """Prometheus on a free port scraping the fresh API every 200 ms (not the system service)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/setup.sh installs it (apt-get install prometheus)"
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 200ms, evaluation_interval: 1s}}\n"
                      f"scrape_configs:\n  - job_name: api\n    static_configs: [{{targets: ['{fresh_api[7:]}']}}]\n")
    port = free_port()
    log = open(directory / "prometheus.log", "wb")  # noqa: SIM115 - open while prometheus runs
    process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_for_port(port, 30, "prometheus", process)
    wait_for_series(url, 'up{job="api"} == 1')
    yield url
    stop_pid(process.pid)
    process.wait()
    log.close()


def wait_for_series(url: str, promql: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=2).json()
            if body["data"]["result"]:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus at {url} never returned {promql}")


def metrics_environment(api_url: str, prometheus_url: str) -> dict:
    return {"tier": "sandbox",
            "http": {"fresh": {"url": api_url, "timeout_s": 3, "metrics": {
                "path": "/metrics",
                "counters": {'errors_total{status="500"}': {"warn": 0, "crit": 5}},
                "gauges": {"database_up": {"floor": {"crit": 1}}, "cache_up": {"floor": {"crit": 1}}},
                "error_ratio": {"gap_s": 1, "pct": {"warn": 1, "crit": 5}}}}},
            "prometheus": {"main": {"url": prometheus_url, "timeout_s": 3, "queries": [
                {"name": "errors_500", "query": 'sum(errors_total{status="500"}) or vector(0)', "ceiling": {"crit": 0}},
                {"name": "api_up", "query": 'up{job="api"}', "floor": {"crit": 1}},
            ]}}}


def test_metrics_and_promql_pass_on_a_healthy_api(write_env, run_checks, fresh_api, prometheus):
    run = run_checks(write_env(metrics_environment(fresh_api, prometheus)), "-k", "metrics or promql")
    assert run.ret == 0, run.output
    assert [r["outcome"] for r in run.results["checks"]] == ["passed"] * 5
    ratio = {m["measure"]: m["value"] for m in run.record("test_metrics_error_ratio_within_threshold")["measurements"]}
    assert ratio["gap_s"] == 1 and ratio["errors_delta"] == 0 and ratio["requests_delta"] >= 1
    assert run.record("test_promql_query_within_threshold", "main")["measurements"][-1]["value"] == 0


@pytest.fixture
def failing_traffic(fresh_api):
    """Requests to /v1/wallets answered with 500 every 20 ms while the test runs: errors rising."""
    httpx.post(f"{fresh_api}/_sandbox/faults", json={"paths": {"/v1/wallets": 500}}, timeout=5)
    stop = threading.Event()

    def send():
        with httpx.Client(timeout=2) as client:
            while not stop.wait(0.02):
                client.get(f"{fresh_api}/v1/wallets")

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    yield
    stop.set()
    sender.join()
    httpx.delete(f"{fresh_api}/_sandbox/faults", timeout=5)


def test_rising_errors_fail_counters_ratio_and_promql(write_env, run_checks, fresh_api, prometheus, failing_traffic):
    httpx.post(f"{fresh_api}/_sandbox/faults", json={"database": "down"}, timeout=5)
    httpx.get(f"{fresh_api}/health", timeout=5)  # the health probe sets database_up to 0
    time.sleep(0.3)  # past the counter's crit (5 errors) before the first scrape
    wait_for_series(prometheus, 'sum(errors_total{status="500"}) > 0')
    run = run_checks(write_env(metrics_environment(fresh_api, prometheus)), "-k", "metrics or promql")
    failed = {r["check"]: r["message"] for r in run.results["checks"] if r["outcome"] == "failed"}
    assert run.ret == 1
    assert set(failed) == {"test_metrics_counters_within_threshold", "test_metrics_error_ratio_within_threshold",
                           "test_promql_query_within_threshold", "test_metrics_gauges_within_threshold"}
    assert failed["test_metrics_gauges_within_threshold"] == "database_up (0.0) >= 1 on http.fresh (crit)"
    assert failed["test_metrics_counters_within_threshold"].startswith('errors_total{status="500"} (')
    assert failed["test_metrics_counters_within_threshold"].endswith(") <= 5 on http.fresh (crit)")
    assert failed["test_metrics_error_ratio_within_threshold"].startswith("error_ratio_pct (")
    assert failed["test_metrics_error_ratio_within_threshold"].endswith(") <= 5 on http.fresh (crit)")
    assert failed["test_promql_query_within_threshold"].startswith("errors_500 (")
    assert failed["test_promql_query_within_threshold"].endswith(") <= 0 on prometheus.main (crit)")


def test_counter_the_target_does_not_declare_errors_instead_of_reading_zero(write_env, run_checks, fresh_api,
                                                                               prometheus):
    environment = metrics_environment(fresh_api, prometheus)
    environment["http"]["fresh"]["metrics"]["counters"] = {'erors_total{status="500"}': {"warn": 0, "crit": 5}}
    run = run_checks(write_env(environment), "-k", "counters")
    record = run.record("test_metrics_counters_within_threshold")
    assert run.ret == 1 and record["outcome"] == "error"
    assert record["message"] == "could not measure on http.fresh: no metric erors_total in the metrics"
