"""HTTP gate gaps against the real demo API: per-request response time, several latency paths, label matchers
(=~, !~, !=) in counters and error_ratio, dependencies with their own credentials, string readiness states."""

from __future__ import annotations

import json

import httpx
import pytest

from opsproof.metrics import parse


def api_target(sandbox, **expectations) -> dict:
    return {"tier": "sandbox", "http": {"api": {"url": sandbox.api_url, "timeout_s": 3, **expectations}}}


def messages(run) -> dict[str, str]:
    return {r["id"].split("::")[-1]: r["message"] for r in run.results["checks"] if r["outcome"] != "skipped"}


def test_a_slow_request_and_slow_latency_paths_fail_each_by_name(sandbox, write_env, run_checks, api_faults):
    environment = api_target(
        sandbox, requests=[{"name": "wallets", "path": "/v1/wallets", "response_time_ms": {"warn": 100, "crit": 200}}],
        latencies=[{"name": "health", "path": "/health", "samples": 2, "p95_ms": {"crit": 200}},
                   {"name": "wallets", "path": "/v1/wallets", "samples": 2, "p95_ms": {"crit": 200}}])
    path = write_env(environment)
    healthy = run_checks(path, "-k", "responds_within or latency_path")
    assert healthy.ret == 0, healthy.output
    assert set(messages(healthy)) == {"test_smoke_request_responds_within_threshold[api:wallets]",
                                      "test_latency_path_p95_within_threshold[api:health]",
                                      "test_latency_path_p95_within_threshold[api:wallets]"}
    api_faults(delay_ms=400)
    slow = run_checks(path, "-k", "responds_within or latency_path")
    failed = messages(slow)
    assert slow.ret == 1
    assert failed["test_smoke_request_responds_within_threshold[api:wallets]"].startswith("wallets.response_time_ms (")
    assert failed["test_smoke_request_responds_within_threshold[api:wallets]"].endswith(") <= 200 on http.api (crit)")
    for name in ("health", "wallets"):
        assert failed[f"test_latency_path_p95_within_threshold[api:{name}]"].startswith(f"{name}.p95_latency_ms (")
    record = slow.record("test_latency_path_p95_within_threshold", "api")
    assert {m["measure"] for m in record["measurements"]} >= {"health.samples", "health.p50_ms", "health.max_ms"}


def test_label_matchers_select_as_prometheus_does():
    scraped = parse('# TYPE errors_total counter\nerrors_total{status="503"} 2\nerrors_total{status="500"} 1\n'
                    'errors_total{status="404"} 7\n')
    assert scraped.total('errors_total{status=~"5.."}') == 3
    assert scraped.total('errors_total{status!~"5.."}') == 7
    assert scraped.total('errors_total{status!="503"}') == 8
    assert scraped.total('errors_total{status=~"5..", status!="500"}') == 2
    assert scraped.total('errors_total{status=~"50"}') == 0  # anchored: "503" is not "50"


def test_counters_with_regex_matchers_pass_then_fail_on_5xx(sandbox, write_env, run_checks, api_faults):
    counters = {'errors_total{status=~"5..", status!="599"}': {"crit": 0}}
    path = write_env(api_target(sandbox, metrics={"counters": {'errors_total{status=~"9.."}': {"crit": 0}}}))
    assert run_checks(path, "-k", "counters").ret == 0
    api_faults(paths={"/v1/wallets": 500})
    httpx.get(f"{sandbox.api_url}/v1/wallets", timeout=5)
    run = run_checks(write_env(api_target(sandbox, metrics={"counters": counters})), "-k", "counters")
    message = run.record("test_metrics_counters_within_threshold")["message"]
    assert run.ret == 1 and message.startswith('errors_total{status=~"5..", status!="599"} (')
    assert message.endswith(") <= 0 on http.api (crit)")


@pytest.mark.parametrize("metrics, key", [
    ({"counters": {'errors_total{status=~"5(.."}': {"crit": 0}}}, "http.api.metrics.counters"),
    ({"counters": {'errors_total{status=~5..}': {"crit": 0}}}, "http.api.metrics.counters"),
    ({"error_ratio": {"errors": 'errors_total{status=~"5.."', "pct": {"crit": 5}}},
     "http.api.metrics.error_ratio.errors"),
    ({"error_ratio": {"total": 'http_requests_total{path!}', "pct": {"crit": 5}}},
     "http.api.metrics.error_ratio.total"),
])
def test_unreadable_selectors_are_rejected_at_load(sandbox, write_env, run_checks, metrics, key):
    path = write_env(api_target(sandbox, metrics=metrics))
    run = run_checks(path, "-k", "counters")
    assert run.ret == 4 and run.run_dir is None
    assert str(path) in run.output and key in run.output


def test_a_dependency_sends_its_own_credentials_method_and_body_and_never_the_targets(
        write_env, run_checks, httpserver, monkeypatch):
    from werkzeug import Response

    seen: list[dict] = []

    def echo(request):
        seen.append({"method": request.method, "headers": dict(request.headers),
                     "body": request.get_data(as_text=True)})
        return Response(json.dumps({"status": "operational", "headers": dict(request.headers)}),
                        content_type="application/json")

    httpserver.expect_request("/status").respond_with_handler(echo)
    monkeypatch.setenv("GAP_TARGET_TOKEN", "target-token-9b1e27")
    monkeypatch.setenv("GAP_DEP_TOKEN", "dependency-token-3f0c88")
    monkeypatch.setenv("GAP_DEP_PASSWORD", "dependency-basic-a61e")
    bearer = {"name": "payments", "url": httpserver.url_for("/status"), "method": "POST", "json_body": {"ping": 1},
              "auth": {"bearer_token": "${GAP_DEP_TOKEN}"}, "headers": {"X-Probe": "opsproof"},
              "json": {"status": "operational"}}
    basic = {"name": "identity", "url": httpserver.url_for("/status"),
             "auth": {"basic_user": "status", "basic_password": "${GAP_DEP_PASSWORD}"}}
    environment = {"tier": "sandbox", "http": {"api": {
        "url": "http://127.0.0.1:9", "auth": {"bearer_token": "${GAP_TARGET_TOKEN}"},
        "headers": {"X-Tenant": "tenant-51e0"}, "dependencies": [bearer, basic]}}}
    run = run_checks(write_env(environment), "-k", "dependency")
    assert run.ret == 0, run.output
    assert len(seen) == 2
    posted, got = sorted(seen, key=lambda s: s["method"], reverse=True)
    assert posted["method"] == "POST" and json.loads(posted["body"]) == {"ping": 1}
    assert posted["headers"]["Authorization"] == "Bearer dependency-token-3f0c88"
    assert posted["headers"]["X-Probe"] == "opsproof"
    assert got["method"] == "GET" and got["headers"]["Authorization"].startswith("Basic ")
    for request in seen:
        assert "X-Tenant" not in request["headers"]
        assert not [v for v in request["headers"].values() if "target-token-9b1e27" in v]
    text = run.run_dir.joinpath("results.json").read_text()
    assert "dependency-token-3f0c88" not in text and "target-token-9b1e27" not in text


def test_a_post_dependency_on_production_must_say_it_only_reads(write_env, run_checks):
    dependency = {"name": "quote", "url": "http://127.0.0.1:9/quote", "method": "POST"}
    run = run_checks(write_env({"tier": "production", "http": {"api": {"url": "http://127.0.0.1:9",
                                                                       "dependencies": [dependency]}}}))
    assert run.ret == 4 and "http.api.dependencies.quote: POST on tier production" in run.output


def test_string_readiness_states_are_judged_with_their_ready_values(sandbox, write_env, run_checks, api_faults):
    api_faults(ready_states="strings")
    ready = {"path": "/ready", "components": ["database", "cache", "migrations"]}
    path = write_env(api_target(sandbox, ready=ready))
    passed = run_checks(path, "-k", "ready_components")
    assert passed.ret == 0, passed.output
    api_faults(unready="migrations")
    run = run_checks(path, "-k", "ready_components")
    assert run.record("test_ready_components_are_ready")["message"] == (
        "unready_components ({'migrations': 'unready'}) == {} on http.api")
    api_faults(unready=None)
    only_up = run_checks(write_env(api_target(sandbox, ready={**ready, "ready_values": "up"})),
                         "-k", "ready_components")
    assert only_up.record("test_ready_components_are_ready")["message"] == (
        "unready_components ({'database': 'ready', 'cache': 'ready', 'migrations': 'ready'}) == {} on http.api")


def test_targets_behind_one_origin_share_its_connections_and_never_their_credentials():
    """One pool per TLS trust: two targets on one origin reuse one kept-alive connection, each request
    with its own target's token; closing one target's client leaves the pool to the other."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opsproof.http import HttpProbe, close_shared_transports

    seen: list[tuple[int, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            seen.append((self.client_address[1], self.headers.get("Authorization")))
            body = b'{"status": "healthy"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        first, second = (HttpProbe(url, 2, headers={"Authorization": f"Bearer token-{n}"}) for n in "ab")
        for _ in range(3):
            assert (first.get("/health").status_code, second.get("/health").status_code) == (200, 200)
        first.close()
        assert second.get("/health").json == {"status": "healthy"}
    finally:
        close_shared_transports()
        server.shutdown()
        server.server_close()
    assert [token for _, token in seen] == ["Bearer token-a", "Bearer token-b"] * 3 + ["Bearer token-b"]
    assert len({port for port, _ in seen}) == 1  # seven requests, one connection
