"""Metrics probes: a target's Prometheus text exposition, and the Prometheus API (queries, alerts, rules).

>>> scraped = scrape(HttpProbe("http://127.0.0.1:8080", 2), "/metrics")    # doctest: +SKIP
>>> scraped.total('errors_total{status="500"}')                            # doctest: +SKIP
0.0
>>> PrometheusProbe(HttpProbe("http://prometheus:9090", 3)).query("sum(up)")   # doctest: +SKIP
{'value': 3.0, 'series': 1, 'labels': {}}
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from opsproof.environment.selectors import parse_selector
from opsproof.errors import ProbeError, first_line


@dataclass(frozen=True)
class Scrape:
    samples: tuple[tuple[str, dict, float], ...]  # (sample name, labels, value)
    families: frozenset[str] = frozenset()  # every metric declared, with or without samples yet

    def matching(self, selector: str) -> list[float]:
        """Values of the series the selector matches (``=``, ``!=``, ``=~``, ``!~``, as Prometheus matches)."""
        wanted = parse_selector(selector)
        return [value for sample, labels, value in self.samples if wanted.matches(sample, labels)]

    def total(self, selector: str) -> float:
        """The sum of every series the selector matches; 0 when the metric is declared but that series has
        not been incremented yet. A metric the target does not declare at all (a typo, a rename) cannot
        be judged: that is a ProbeError, not a reassuring 0."""
        name = parse_selector(selector).name
        declared = {name, name.removesuffix("_total")} & self.families
        if not declared and not any(sample == name for sample, _, _ in self.samples):
            raise ProbeError(f"no metric {name} in the metrics")
        return float(sum(self.matching(selector)))

    def gauge(self, selector: str) -> float:
        values = self.matching(selector)
        if not values:
            raise ProbeError(f"no series {selector} in the metrics")
        return float(sum(values))


def parse(text: str) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as error:
        raise ProbeError(f"not Prometheus text exposition: {first_line(error)}") from None
    samples = tuple((s.name, dict(s.labels), float(s.value)) for family in families for s in family.samples)
    return Scrape(samples, frozenset(family.name for family in families))


def scrape(probe, path: str) -> Scrape:
    """GET ``path`` on an HttpProbe and parse it."""
    response = probe.get(path)
    if response.status_code != 200:
        raise ProbeError(f"GET {path}: status {response.status_code}")
    return parse(response.text)


def error_ratio(probe, path: str, ratio) -> dict:
    """Errors as a percentage of requests between two scrapes ``ratio.gap_s`` apart."""
    first = scrape(probe, path)
    time.sleep(ratio.gap_s)
    second = scrape(probe, path)
    errors = second.total(ratio.errors) - first.total(ratio.errors)
    requests = second.total(ratio.total) - first.total(ratio.total)
    return {"gap_s": ratio.gap_s, "errors_delta": errors, "requests_delta": requests,
            "error_ratio_pct": 100 * errors / requests if requests > 0 else 0.0}


class PrometheusProbe:
    """A Prometheus HTTP API through one client (its auth, headers and CA): instant queries
    (``/api/v1/query``), the firing alerts (``ALERTS``) and the rule groups (``/api/v1/rules``)."""

    def __init__(self, http):
        self.timeout_s = http.timeout_s
        self._http = http

    def _api(self, path: str, what: str) -> dict:
        response = self._http.get(path)
        body = response.json if isinstance(response.json, dict) else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise ProbeError(f"{what}: {body.get('error') or f'status {response.status_code}'}")
        return body.get("data", {})

    def vector(self, promql: str) -> list[dict]:
        """Every series of an instant query (``[]`` when none): ``[{"metric": {...}, "value": [t, "1"]}]``."""
        from urllib.parse import urlencode

        data = self._api(f"/api/v1/query?{urlencode({'query': promql})}", f"query {promql!r}")
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data.get("result", []))

    def query(self, promql: str) -> dict:
        """The first series' value of an instant vector (or a scalar); an empty result cannot be judged."""
        result = self.vector(promql)
        if not result:
            raise ProbeError(f"query {promql!r} returned no series")
        return {"value": float(result[0]["value"][1]), "series": len(result), "labels": result[0].get("metric", {})}

    def rules(self) -> list[dict]:
        """The rule groups Prometheus evaluates (``/api/v1/rules``), each with its rules' health and lastError."""
        return list(self._api("/api/v1/rules", "rules").get("groups", []))

    def close(self) -> None:
        self._http.close()
