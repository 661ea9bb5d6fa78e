"""HTTP: the runbook's `curl /health`, expecting the status, the JSON fields and a quick answer."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p0
def test_health_returns_expected_status(http_target, health_response, evidence):
    evidence.expect("status_code", health_response.status_code, "==", http_target.health.status)


@pytest.mark.p0
def test_health_reports_expected_fields(http_target, health_response, evidence):
    expected = http_target.health.json_fields
    actual = {path: health_response.field(path, "<missing>") for path in expected}
    evidence.expect("health_fields", actual, "==", expected)


@pytest.mark.p1
def test_health_responds_within_threshold(http_target, health_response, evidence):
    evidence.within("response_time_ms", health_response.elapsed_ms, http_target.health.response_time_ms)
