"""HTTP: the runbook's `curl /health`, readiness by component, latency, the smoke request list and dependencies."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p0
def test_health_returns_expected_status(http_target, health_response, evidence):
    evidence.expect("status_code", health_response.status_code, "==", http_target.health.status)


@pytest.mark.p0
def test_health_reports_expected_fields(http_target, health_response, evidence):
    expected = http_target.health.json_fields
    if not expected:
        pytest.skip(f"{http_target.where} expects no health fields")
    actual = {path: health_response.field(path, "<missing>") for path in expected}
    evidence.expect("health_fields", actual, "==", expected)


@pytest.mark.p1
def test_health_fields_exist(http_target, health_response, evidence):
    if not http_target.health.exists:
        pytest.skip(f"{http_target.where} expects no health fields to exist")
    missing = [path for path in http_target.health.exists if health_response.field(path, None) is None]
    evidence.expect("missing_health_fields", missing, "==", [])


@pytest.mark.p1
def test_health_sends_expected_headers(http_target, health_response, evidence):
    expected = http_target.health.headers
    if not expected:
        pytest.skip(f"{http_target.where} expects no health headers")
    evidence.expect("health_headers", {h: health_response.header(h) for h in expected}, "==", expected)


@pytest.mark.p1
def test_health_body_matches_pattern(http_target, health_response, evidence):
    pattern = http_target.health.body_pattern
    if pattern is None:
        pytest.skip(f"{http_target.where} expects no health body pattern")
    evidence.record("body_pattern", pattern)
    evidence.expect("health_body_matches", health_response.matches(pattern), "==", True)


@pytest.mark.p1
def test_health_responds_within_threshold(http_target, health_response, evidence):
    evidence.judge("response_time_ms", health_response.elapsed_ms, http_target.health.response_time_ms)


@pytest.mark.p0
def test_ready_components_are_ready(http_target, ready_response, evidence):
    ready = http_target.ready
    listed = ready_response.field(ready.components_path, {})
    listed = listed if isinstance(listed, dict) else {}
    for name, state in listed.items():
        evidence.record("component_ready", ready.is_ready(state), component=name)
    unready = {name: "missing" for name in ready.components if name not in listed}
    unready |= {name: (state.get("reason", "not ready") if isinstance(state, dict) else
                       state if isinstance(state, str) else repr(state))
                for name, state in listed.items() if not ready.is_ready(state)}
    evidence.expect("unready_components", unready, "==", {})


@pytest.mark.p1
def test_latency_p95_within_threshold(http_target, latency_samples, evidence):
    for measure in ("samples", "p50_ms", "max_ms"):
        evidence.record(measure, latency_samples[measure])
    evidence.judge("p95_latency_ms", latency_samples["p95_ms"], http_target.latency.p95_ms)


@pytest.mark.p1
def test_latency_path_p95_within_threshold(latency_path, latency_path_samples, evidence):
    for measure in ("samples", "p50_ms", "max_ms"):
        evidence.record(f"{latency_path.name}.{measure}", latency_path_samples[measure])
    evidence.judge(f"{latency_path.name}.p95_latency_ms", latency_path_samples["p95_ms"], latency_path.p95_ms)


@pytest.mark.p1
def test_smoke_request_returns_expected_status(smoke_request, smoke_response, evidence):
    evidence.expect(f"{smoke_request.name}.status_code", smoke_response.status_code, "==", smoke_request.status)


@pytest.mark.p1
def test_smoke_request_returns_expected_content(smoke_request, smoke_response, evidence):
    expected = {**smoke_request.json_fields, **{f"header {h}": v for h, v in smoke_request.headers.items()}}
    expected |= {f"exists {path}": True for path in smoke_request.exists}
    if smoke_request.body_pattern:
        expected[f"body ~ {smoke_request.body_pattern}"] = True
    if not expected:
        pytest.skip(f"{smoke_request.name} expects no content")
    actual = {path: smoke_response.field(path, "<missing>") for path in smoke_request.json_fields}
    actual |= {f"header {h}": smoke_response.header(h) for h in smoke_request.headers}
    actual |= {f"exists {path}": smoke_response.field(path, None) is not None for path in smoke_request.exists}
    if smoke_request.body_pattern:
        actual[f"body ~ {smoke_request.body_pattern}"] = smoke_response.matches(smoke_request.body_pattern)
    evidence.expect(f"{smoke_request.name}.content", actual, "==", expected)


@pytest.mark.p1
def test_smoke_request_responds_within_threshold(smoke_request, smoke_response, evidence):
    evidence.judge(f"{smoke_request.name}.response_time_ms", smoke_response.elapsed_ms, smoke_request.response_time_ms)


@pytest.mark.p2
def test_dependency_is_available(dependency, dependency_response, evidence):
    evidence.record(f"{dependency.name}.response_time_ms", dependency_response.elapsed_ms)
    evidence.expect(f"{dependency.name}.status_code", dependency_response.status_code, "==", dependency.status)


@pytest.mark.p2
def test_dependency_reports_expected_fields(dependency, dependency_response, evidence):
    if not dependency.json_fields:
        pytest.skip(f"{dependency.name} expects no fields")
    actual = {path: dependency_response.field(path, "<missing>") for path in dependency.json_fields}
    evidence.expect(f"{dependency.name}.fields", actual, "==", dependency.json_fields)
