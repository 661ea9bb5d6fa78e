"""The first checks against the real sandbox: pass when healthy, fail with evidence on real faults."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import sandbox_environment
from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox import redis as sandbox_redis
from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port


def test_every_first_check_passes_on_the_healthy_sandbox(sandbox, write_env, run_checks):
    run = run_checks(write_env(sandbox_environment(sandbox)), "-m", "not destructive")  # drills have their own tests
    assert run.ret == 0, run.output
    first = {"test_postgres_answers_select_1", "test_redis_answers_ping", "test_health_returns_expected_status",
             "test_health_reports_expected_fields", "test_health_responds_within_threshold"}
    assert {r["outcome"] for r in run.results["checks"] if r["check"] in first} == {"passed"}
    # the data-store checks whose expectation this environment leaves out are skipped, the rest pass
    assert {r["outcome"] for r in run.results["checks"] if r["check"] not in first} == {"passed", "skipped"}
    assert run.record("test_postgres_answers_select_1")["measurements"][0]["value"].startswith("15")
    assert run.record("test_redis_answers_ping")["measurements"][0]["measure"] == "redis_version"
    assert run.record("test_health_returns_expected_status")["measurements"][0]["value"] == 200


def test_smoke_suite_selects_checks_by_marker(sandbox, write_env, run_checks):
    run = run_checks(write_env(sandbox_environment(sandbox)), "--suite", "smoke")
    assert run.ret == 0 and run.results["suite"] == "smoke" and run.run_dir.name.endswith("-smoke")


# --- HTTP -------------------------------------------------------------------------------------------

def test_degraded_body_fails_fields_and_status(sandbox, write_env, run_checks, api_faults):
    api_faults(health="degraded")
    run = run_checks(write_env(sandbox_environment(sandbox)))
    assert run.ret == 1
    assert run.record("test_health_returns_expected_status")["message"] == "status_code (503) == 200 on http.api"
    assert run.record("test_health_reports_expected_fields")["message"] == (
        "health_fields ({'status': 'degraded'}) == {'status': 'healthy'} on http.api"
    )


def slow_environment(sandbox) -> dict:
    environment = sandbox_environment(sandbox)
    environment["http"]["api"]["health"]["response_time_ms"] = {"warn": 300, "crit": 1500}
    return environment


def test_slow_health_between_warn_and_crit_is_warned(sandbox, write_env, run_checks, api_faults):
    api_faults(delay_ms=600)
    run = run_checks(write_env(slow_environment(sandbox)))
    record = run.record("test_health_responds_within_threshold")
    assert run.ret == 0
    assert record["outcome"] == "warned"
    assert record["message"].startswith("response_time_ms (") and record["message"].endswith(
        ") <= 300 on http.api (warn)"
    )
    assert 600 <= record["measurements"][0]["value"] < 1500


def test_slow_health_past_crit_fails(sandbox, write_env, run_checks, api_faults):
    api_faults(delay_ms=1600)
    run = run_checks(write_env(slow_environment(sandbox)))
    record = run.record("test_health_responds_within_threshold")
    assert run.ret == 1 and record["outcome"] == "failed" and record["message"].endswith("<= 1500 on http.api (crit)")


def test_silent_http_port_errors_within_timeout_and_skips_the_rest(sandbox, write_env, run_checks, silent_port):
    environment = sandbox_environment(sandbox)
    environment["http"]["api"].update(url=f"http://127.0.0.1:{silent_port}", timeout_s=1)
    started = time.monotonic()
    run = run_checks(write_env(environment), "-k", "health")
    elapsed_s = time.monotonic() - started
    assert run.ret == 1
    first = run.record("test_health_returns_expected_status")
    assert first["outcome"] == "error"
    assert first["message"] == "could not measure on http.api: GET /health: no response within 1 s (ReadTimeout)"
    for check in ("test_health_reports_expected_fields", "test_health_responds_within_threshold"):
        assert run.record(check)["outcome"] == "skipped"
        assert run.record(check)["message"].startswith("http.api is unreachable: GET /health: no response")
    assert elapsed_s < 1 + 3, f"three checks on a hung target took {elapsed_s:.1f} s, not one timeout"


@pytest.fixture
def stopped_api_port():
    """A demo API process started, then stopped: its port now refuses connections."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "opsproof.sandbox.api", "--port", str(port)],
                               env={"SANDBOX_PG_DSN": "postgresql://x@127.0.0.1:1/x", "SANDBOX_REDIS_URL": "redis://127.0.0.1:1"})
    wait_for_port(port, 20, "api", process)
    stop_pid(process.pid)
    process.wait()
    return port


def test_stopped_http_server_errors_with_refused(sandbox, write_env, run_checks, stopped_api_port):
    environment = sandbox_environment(sandbox)
    environment["http"]["api"]["url"] = f"http://127.0.0.1:{stopped_api_port}"
    run = run_checks(write_env(environment))
    record = run.record("test_health_returns_expected_status")
    assert run.ret == 1 and record["outcome"] == "error" and record["gating"]
    assert "ConnectError" in record["message"] and "Connection refused" in record["message"]


# --- PostgreSQL --------------------------------------------------------------------------------------

def test_silent_postgres_port_errors_within_connect_timeout(sandbox, write_env, run_checks, silent_port):
    environment = sandbox_environment(sandbox)
    environment["postgres"]["main"]["dsn"] = f"postgresql://bankchain@127.0.0.1:{silent_port}/bankchain"
    started = time.monotonic()
    run = run_checks(write_env(environment), "-k", "postgres")
    record = run.record("test_postgres_answers_select_1")
    assert run.ret == 1 and record["outcome"] == "error"
    assert record["message"].startswith("could not measure on postgres.main: connect:")
    assert "timeout" in record["message"]
    assert time.monotonic() - started < 2 + 3


@pytest.fixture(scope="module")
def stopped_postgres_port(tmp_path_factory):
    """A real PostgreSQL cluster, started and then stopped."""
    port = free_port()
    data_dir = sandbox_pg.create_cluster(tmp_path_factory.mktemp("pg"), port, "admin-password")
    sandbox_pg.start(data_dir, port)
    sandbox_pg.stop(data_dir)
    yield port
    sandbox_pg.remove(data_dir, data_dir.parent)


def test_stopped_postgres_errors_with_refused(sandbox, write_env, run_checks, stopped_postgres_port):
    environment = sandbox_environment(sandbox)
    environment["postgres"]["main"]["dsn"] = f"postgresql://bankchain@127.0.0.1:{stopped_postgres_port}/bankchain"
    run = run_checks(write_env(environment), "-k", "postgres")
    record = run.record("test_postgres_answers_select_1")
    assert run.ret == 1 and record["outcome"] == "error"
    assert "Connection refused" in record["message"] and "postgres.main" in record["message"]


def test_wrong_postgres_password_errors(sandbox, write_env, run_checks, monkeypatch):
    monkeypatch.setenv("TEST_PG_PASSWORD", "not-the-password")
    run = run_checks(write_env(sandbox_environment(sandbox)), "-k", "postgres")
    assert run.ret == 1
    assert "password authentication failed" in run.record("test_postgres_answers_select_1")["message"]


# --- Redis ---------------------------------------------------------------------------------------------

def test_silent_redis_port_errors_within_timeout(sandbox, write_env, run_checks, silent_port):
    environment = sandbox_environment(sandbox)
    environment["redis"]["cache"]["url"] = f"redis://127.0.0.1:{silent_port}/0"
    started = time.monotonic()
    run = run_checks(write_env(environment), "-k", "redis")
    record = run.record("test_redis_answers_ping")
    assert run.ret == 1 and record["outcome"] == "error"
    assert record["message"] == "could not measure on redis.cache: INFO: no complete answer within 2 s"
    assert time.monotonic() - started < 2 + 3


def test_stopped_redis_errors_with_refused(sandbox, write_env, run_checks, tmp_path):
    port = free_port()
    pid = sandbox_redis.start(tmp_path, port, "some-password")
    stop_pid(pid)
    environment = sandbox_environment(sandbox)
    environment["redis"]["cache"]["url"] = f"redis://127.0.0.1:{port}/0"
    run = run_checks(write_env(environment), "-k", "redis")
    record = run.record("test_redis_answers_ping")
    assert run.ret == 1 and record["outcome"] == "error" and "Connection refused" in record["message"]
