"""HTTP checks against the real sandbox API: pass when healthy, fail with exact evidence on injected faults."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from conftest import sandbox_environment


SLOW = {"warn": 1000, "crit": 5000}  # generous: a loaded CI machine


def web_environment(sandbox) -> dict:
    """Every HTTP expectation, on the sandbox API; no other kinds, so runs stay short."""
    api = sandbox.api_url
    return {"tier": "sandbox", "http": {
        "api": {
            "url": api, "timeout_s": 3, "auth": {"bearer_token": "${TEST_API_TOKEN}"},
            "health": {"path": "/health", "json": {"status": "healthy"}, "exists": ["version", "services.database"],
                       "headers": {"content-type": "application/json"}, "body_pattern": '"status": "healthy"',
                       "response_time_ms": {"warn": 1000, "crit": 5000}},  # generous: a loaded CI machine
            "ready": {"path": "/ready", "components_path": "checks", "components": ["database", "cache", "migrations"]},
            "latency": {"path": "/health", "samples": 5, "p95_ms": {"warn": 1000, "crit": 5000}},
            "latencies": [{"name": "wallets", "path": "/v1/wallets", "samples": 2, "p95_ms": {"crit": 5000}}],
            "requests": [
                {"name": "wallets", "path": "/v1/wallets", "exists": ["wallets.0.id"], "response_time_ms": SLOW},
                {"name": "old_health", "path": "/old-health", "status": 301, "headers": {"location": "/health"},
                 "response_time_ms": SLOW},
                {"name": "account", "path": "/v1/account", "json": {"scheme": "Bearer"}, "response_time_ms": SLOW},
                {"name": "head_health", "method": "HEAD", "path": "/health", "response_time_ms": SLOW},
            ],
            "dependencies": [{"name": "payments", "url": f"{api}/status/payments", "json": {"status": "operational"},
                              "timeout_s": 1, "severity": "p3"}],
        },
        "follow": {
            "url": api, "follow_redirects": True,
            "auth": {"basic_user": "operator", "basic_password": "${TEST_API_TOKEN}"},
            "requests": [{"name": "old_health", "path": "/old-health", "json": {"status": "healthy"},
                          "response_time_ms": SLOW},
                         {"name": "account", "path": "/v1/account", "json": {"scheme": "Basic"},
                          "response_time_ms": SLOW}],
        },
    }}


@pytest.fixture
def api_token(sandbox, monkeypatch):
    token = sandbox.variables["SANDBOX_API_TOKEN"]
    monkeypatch.setenv("TEST_API_TOKEN", token)
    return token


def test_every_http_check_passes_on_the_healthy_api(sandbox, write_env, run_checks, api_token):
    run = run_checks(write_env(web_environment(sandbox)), "-k", "test_http")
    outcomes = {r["id"].split("::")[-1]: r["outcome"] for r in run.results["checks"]}
    assert run.ret == 0, run.output
    assert "warned" not in outcomes.values(), [r["message"] for r in run.results["checks"] if r["outcome"] == "warned"]
    skipped = {r["message"] for r in run.results["checks"] if r["outcome"] == "skipped"}
    assert skipped == {"head_health expects no content", "http.follow has no health expectation",
                       "http.follow has no ready expectation", "http.follow has no latency expectation"}
    # health 6, ready, latency, 4 requests x 3 (HEAD has no content), follow's 2 x 3, dependency 2, latency path
    assert list(outcomes.values()).count("passed") == 6 + 1 + 1 + 11 + 6 + 2 + 1, outcomes
    latency = {m["measure"]: m["value"] for m in run.record("test_latency_p95_within_threshold")["measurements"]}
    assert latency["samples"] == 5 and 0 < latency["p50_ms"] <= latency["p95_latency_ms"] <= latency["max_ms"]
    ready = run.record("test_ready_components_are_ready")["measurements"]
    assert [(m["component"], m["value"]) for m in ready[:3]] == [("database", True), ("cache", True), ("migrations", True)]
    assert run.record("test_dependency_is_available")["severity"] == "p3"
    for path in run.run_dir.iterdir():
        assert api_token not in path.read_text(), f"the bearer token leaked into {path.name}"


def test_faults_fail_the_component_request_and_dependency_they_hit(sandbox, write_env, run_checks, api_token,
                                                                   api_faults, monkeypatch):
    api_faults(unready="migrations", missing="cache", health="degraded", content_type="text/html",
               paths={"/v1/wallets": 500, "/status/payments": 503})
    monkeypatch.setenv("TEST_API_TOKEN", "not-the-token")
    run = run_checks(write_env(web_environment(sandbox)), "-k", "test_http and not latency")
    message = {r["id"].split("::")[-1]: r["message"] for r in run.results["checks"] if r["outcome"] == "failed"}
    assert run.ret == 1
    assert message == {
        "test_health_returns_expected_status[api]": "status_code (503) == 200 on http.api",
        "test_health_reports_expected_fields[api]": "health_fields ({'status': 'degraded'}) == {'status': 'healthy'} on http.api",
        "test_health_body_matches_pattern[api]": "health_body_matches (false) == true on http.api",
        "test_health_sends_expected_headers[api]":
            "health_headers ({'content-type': 'text/html'}) == {'content-type': 'application/json'} on http.api",
        "test_ready_components_are_ready[api]":
            "unready_components ({'cache': 'missing', 'migrations': 'injected fault'}) == {} on http.api",
        "test_smoke_request_returns_expected_status[api:wallets]": "wallets.status_code (500) == 200 on http.api",
        "test_smoke_request_returns_expected_content[api:wallets]":
            "wallets.content ({'exists wallets.0.id': False}) == {'exists wallets.0.id': True} on http.api",
        "test_smoke_request_returns_expected_status[api:account]": "account.status_code (401) == 200 on http.api",
        "test_smoke_request_returns_expected_content[api:account]":
            "account.content ({'scheme': '<missing>'}) == {'scheme': 'Bearer'} on http.api",
        "test_smoke_request_returns_expected_status[follow:old_health]":
            "old_health.status_code (503) == 200 on http.follow",
        "test_smoke_request_returns_expected_content[follow:old_health]":
            "old_health.content ({'status': 'degraded'}) == {'status': 'healthy'} on http.follow",
        "test_smoke_request_returns_expected_status[follow:account]": "account.status_code (401) == 200 on http.follow",
        "test_smoke_request_returns_expected_content[follow:account]":
            "account.content ({'scheme': '<missing>'}) == {'scheme': 'Basic'} on http.follow",
        "test_dependency_is_available[api:payments]": "payments.status_code (503) == 200 on http.api",
        "test_dependency_reports_expected_fields[api:payments]":
            "payments.fields ({'status': '<missing>'}) == {'status': 'operational'} on http.api",
    }
    unhidden = [r for r in run.results["checks"] if r["id"].endswith("status[api:old_health]")]
    assert [r["outcome"] for r in unhidden] == ["passed"]  # one failing request does not hide the others
    assert not run.record("test_dependency_is_available")["gating"]  # its own severity: p3


def test_slow_endpoint_latency_p95_is_warned_then_failed(sandbox, write_env, run_checks, api_token, api_faults):
    environment = web_environment(sandbox)
    environment["http"]["api"]["latency"] = {"path": "/health", "samples": 3, "p95_ms": {"warn": 100, "crit": 600}}
    api_faults(delay_ms=150)
    warned = run_checks(write_env(environment), "-k", "latency").record("test_latency_p95_within_threshold")
    assert warned["outcome"] == "warned" and warned["message"].endswith(") <= 100 on http.api (warn)")
    api_faults(delay_ms=650)
    failed = run_checks(write_env(environment), "-k", "latency").record("test_latency_p95_within_threshold")
    p95 = next(m["value"] for m in failed["measurements"] if m["measure"] == "p95_latency_ms")
    assert failed["outcome"] == "failed" and p95 >= 650 and failed["message"].startswith("p95_latency_ms (")
    assert failed["message"].endswith(") <= 600 on http.api (crit)")


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself and remembers the absolute URL it was asked for."""

    seen: ClassVar[list[str]] = []

    def do_GET(self):
        self.seen.append(self.path)
        body = json.dumps({"status": "healthy", "via": "proxy"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Proxy.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("how", ["setting", "environment"])
def test_requests_go_through_the_configured_proxy(write_env, run_checks, proxy_url, monkeypatch, how):
    target = {"url": "http://upstream.opsproof.invalid:8080", "timeout_s": 2,
              "health": {"path": "/health", "json": {"via": "proxy"}}}
    if how == "setting":
        target["proxy"] = proxy_url
    else:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
    run = run_checks(write_env({"tier": "sandbox", "http": {"api": target}}), "-k", "health")
    assert run.ret == 0, run.output
    assert run.record("test_health_reports_expected_fields")["outcome"] == "passed"
    assert _Proxy.seen == ["http://upstream.opsproof.invalid:8080/health"]


def test_hung_dependency_errors_in_its_own_timeout_and_leaves_the_target_reachable(
        sandbox, write_env, run_checks, silent_port):
    target = {"url": sandbox.api_url, "timeout_s": 5, "health": {"path": "/health"},
              "dependencies": [{"name": "identity", "url": f"http://127.0.0.1:{silent_port}/status", "timeout_s": 1}]}
    run = run_checks(write_env({"tier": "sandbox", "http": {"api": target}}), "-k", "dependency or health_returns")
    dependency = run.record("test_dependency_is_available")
    assert dependency["outcome"] == "error" and dependency["severity"] == "p2"
    assert dependency["message"] == (
        f"could not measure on http.api: GET http://127.0.0.1:{silent_port}/status: no response within 1 s (ReadTimeout)")
    assert run.record("test_health_returns_expected_status")["outcome"] == "passed"


def test_a_dependency_sees_nothing_of_its_targets_credentials_headers_proxy_or_ca(
        sandbox, write_env, run_checks, httpserver, refused_port, monkeypatch):
    """A third party's status URL gets its own client: no token, basic credentials, headers, proxy or CA."""
    from werkzeug import Response

    seen: list[dict] = []

    def echo(request):
        seen.append(dict(request.headers))
        return Response(json.dumps({"status": "operational"}), content_type="application/json")

    httpserver.expect_request("/status").respond_with_handler(echo)
    monkeypatch.setenv("DEP_TARGET_TOKEN", "dep-token-4c1f9e")
    monkeypatch.setenv("DEP_TARGET_PASSWORD", "dep-basic-77ad02")
    dependency = {"name": "payments", "url": httpserver.url_for("/status"), "json": {"status": "operational"},
                  "timeout_s": 2}
    https_dependency = {"name": "front", "url": f"{sandbox.variables['SANDBOX_HTTPS_URL']}/status/payments",
                        "timeout_s": 2}
    environment = {"tier": "sandbox", "http": {
        "bearer": {"url": "http://127.0.0.1:9", "auth": {"bearer_token": "${DEP_TARGET_TOKEN}"},
                   "headers": {"X-Tenant-Key": "tenant-key-51e0"}, "proxy": f"http://127.0.0.1:{refused_port}",
                   "tls": {"ca_file": sandbox.variables["SANDBOX_CA_FILE"]},
                   "dependencies": [dependency, https_dependency]},
        "basic": {"url": "http://127.0.0.1:9", "auth": {"basic_user": "operator",
                                                          "basic_password": "${DEP_TARGET_PASSWORD}"},
                  "dependencies": [dependency]},
    }}
    run = run_checks(write_env(environment), "-k", "dependency")
    for headers in seen:
        assert {name.lower() for name in headers} & {"authorization", "x-tenant-key", "proxy-authorization"} == set()
        assert not [v for v in headers.values() if "dep-token-4c1f9e" in v or "tenant-key-51e0" in v]
    outcomes = {r["id"].split("::")[-1]: r["outcome"] for r in run.results["checks"]}
    # the target's proxy (a refused port) was not used: the echo server was reached directly, twice
    assert outcomes == {"test_dependency_is_available[bearer:payments]": "passed",
                        "test_dependency_is_available[bearer:front]": "error",
                        "test_dependency_is_available[basic:payments]": "passed",
                        "test_dependency_reports_expected_fields[bearer:payments]": "passed",
                        "test_dependency_reports_expected_fields[bearer:front]": "error",
                        "test_dependency_reports_expected_fields[basic:payments]": "passed"}, run.output
    assert len(seen) == 2
    # the target trusts the sandbox CA for itself; its dependency verifies against the system store
    front = next(r for r in run.results["checks"] if r["id"].endswith("available[bearer:front]"))
    assert front["message"].startswith(f"could not measure on http.bearer: GET {https_dependency['url']}: ConnectError")
    assert "CERTIFICATE_VERIFY_FAILED" in front["message"]


def test_fifty_silent_targets_overlap_their_timeouts(write_env, run_checks, silent_port):
    targets = {f"hung{i:02d}": {"url": f"http://127.0.0.1:{silent_port}", "timeout_s": 1,
                                "health": {"path": "/health", "status": 200}} for i in range(50)}
    started = time.monotonic()
    run = run_checks(write_env({"tier": "sandbox", "http": targets}), "-k", "health_returns")
    elapsed_s = time.monotonic() - started
    errors = [r for r in run.results["checks"] if r["outcome"] == "error"]
    assert run.ret == 1 and len(errors) == 50
    # one deadline for the whole request: which step it ran out in (connect, write or read) depends on how
    # soon each of the 50 concurrent requests got the CPU; every one of them is "no response within 1 s"
    said = {r["target"]: r["message"] for r in errors}
    assert set(said) == set(targets)
    for target, message in said.items():
        assert re.fullmatch(rf"could not measure on http\.{target}: GET /health: no response within 1 s "
                            r"\((Connect|Write|Read|Pool)Timeout\)", message), message
    assert elapsed_s < 10, f"50 hung targets took {elapsed_s:.1f} s: their timeouts did not overlap"


def test_sandbox_environment_is_unchanged_by_web_models(sandbox):
    """The shared helper still validates: HttpTarget moved to environment/web.py with the same fields."""
    from opsproof.environment import Environment

    assert Environment.model_validate({"name": "x", **sandbox_environment(sandbox)}).http["api"].health.status == 200


def quote_requests(*requests: dict) -> dict:
    return {"tier": "sandbox", "http": {"api": {"url": "${TEST_API_URL}", "timeout_s": 3, "requests": list(requests)}}}


def test_requests_send_json_and_raw_bodies(sandbox, write_env, run_checks, monkeypatch):
    monkeypatch.setenv("TEST_API_URL", sandbox.api_url)
    run = run_checks(write_env(quote_requests(
        {"name": "quote", "method": "POST", "path": "/v1/quotes", "json_body": {"amount": 200, "currency": "EUR"},
         "json": {"fee": 3.0}},
        {"name": "raw_quote", "method": "POST", "path": "/v1/quotes", "body": '{"amount": 10, "currency": "USD"}',
         "request_headers": {"content-type": "application/json"}, "json": {"fee": 0.15, "currency": "USD"}},
        {"name": "bad_quote", "method": "POST", "path": "/v1/quotes", "json_body": {"amount": 10}},
    )), "-k", "smoke_request")
    checks = {r["id"].split("::")[1]: r for r in run.results["checks"]}
    assert checks["test_smoke_request_returns_expected_content[api:quote]"]["outcome"] == "passed"
    assert checks["test_smoke_request_returns_expected_content[api:raw_quote]"]["outcome"] == "passed"
    assert checks["test_smoke_request_returns_expected_status[api:bad_quote]"]["message"] == (
        "bad_quote.status_code (400) == 200 on http.api")


def test_production_refuses_a_request_that_may_change_state(write_env):
    from opsproof.environment import load_environment
    from opsproof.errors import ConfigError

    post = {"name": "refund", "method": "POST", "path": "/v1/refunds", "json_body": {"id": 1}}
    environment = {**quote_requests(post), "tier": "production"}
    environment["http"]["api"]["url"] = "https://api.example.com"
    with pytest.raises(ConfigError, match=r"http\.api\.requests\.refund: POST on tier production; production is "
                                          r"read-only \(set read_only: true only for a request that changes nothing"):
        load_environment(write_env(environment))
    environment["http"]["api"]["requests"] = [{**post, "read_only": True}]
    assert load_environment(write_env(environment)).environment.http["api"].requests[0].read_only
    environment["http"]["api"]["requests"] = [{**post, "body": "x"}]
    with pytest.raises(ConfigError, match=r"requests\.0.*give body or json_body, not both"):
        load_environment(write_env(environment))
