"""Metrics: the runbooks' error counters, error rate and gauges from /metrics, and their PromQL queries."""

import pytest

pytestmark = [pytest.mark.nightly]


@pytest.mark.smoke
@pytest.mark.p1
def test_metrics_counters_within_threshold(http_target, metrics_scrape, evidence):
    counters = http_target.metrics.counters
    if not counters:
        pytest.skip(f"{http_target.where} has no counter expectations")
    for selector, threshold in counters.items():
        evidence.within(selector, metrics_scrape.total(selector), threshold)


@pytest.mark.smoke
@pytest.mark.p2
def test_metrics_gauges_within_threshold(http_target, metrics_scrape, evidence):
    gauges = http_target.metrics.gauges
    if not gauges:
        pytest.skip(f"{http_target.where} has no gauge expectations")
    for selector, limits in gauges.items():
        value = metrics_scrape.gauge(selector)
        evidence.record(selector, value)
        for threshold in (limits.ceiling, limits.floor):
            if threshold is not None:
                evidence.within(selector, value, threshold)


@pytest.mark.p1
def test_metrics_error_ratio_within_threshold(http_target, error_ratio, evidence):
    """Nightly only: it waits gap_s between two scrapes, which a smoke gate should not spend."""
    for measure in ("gap_s", "errors_delta", "requests_delta"):
        evidence.record(measure, error_ratio[measure])
    evidence.within("error_ratio_pct", error_ratio["error_ratio_pct"], http_target.metrics.error_ratio.pct)


@pytest.mark.smoke
@pytest.mark.p1
def test_promql_query_within_threshold(prom_query, prom_value, evidence):
    evidence.record(f"{prom_query.name}.series", prom_value["series"])
    for threshold in (prom_query.ceiling, prom_query.floor):
        if threshold is not None:
            evidence.within(prom_query.name, prom_value["value"], threshold)
