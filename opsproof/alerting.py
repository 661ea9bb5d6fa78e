"""Alerting probes: alerts firing (Prometheus ``ALERTS`` or the Alertmanager API v2) and rules failing to evaluate.

No alert is 0, not an error: both APIs answer an empty list when nothing fires.

>>> firing_in_prometheus(prometheus_probe, FiringAlerts())          # doctest: +SKIP
[{'alertname': 'BackupStale', 'severity': 'critical', ...}]
>>> AlertmanagerProbe(HttpProbe("http://127.0.0.1:9093", 3)).active('severity="critical"')   # doctest: +SKIP
[{'alertname': 'BackupStale', 'severity': 'critical'}]
>>> failing_rules([{"name": "api", "rules": [{"name": "A", "health": "err", "lastError": "bad"}]}])
{'api/A': 'bad'}
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlencode

from opsproof.environment.selectors import Matcher, Selector, parse_matchers
from opsproof.errors import ProbeError


def firing_in_prometheus(probe, alerts) -> list[dict]:
    """The labels of each firing alert matching ``alerts.matchers``, from Prometheus's ``ALERTS`` series."""
    selector = Selector("ALERTS", (Matcher("alertstate", "=", "firing"), *parse_matchers(alerts.matchers)))
    labels = [series.get("metric", {}) for series in probe.vector(selector.query())]
    return [label for label in labels if label.get("alertname") not in alerts.ignore]


def named(alerts: list[dict]) -> str:
    """``BackupStale, DiskFull x2``: what fires, for the evidence line."""
    counts = Counter(alert.get("alertname", "?") for alert in alerts)
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in sorted(counts.items()))


def failing_rules(groups: list[dict]) -> dict[str, str]:
    """``{"group/rule": lastError}`` for each rule whose last evaluation failed (health ``err``)."""
    return {f"{group.get('name')}/{rule.get('name')}": rule.get("lastError") or rule.get("health")
            for group in groups for rule in group.get("rules", [])
            if rule.get("health") == "err" or rule.get("lastError")}


def rule_count(groups: list[dict]) -> int:
    return sum(len(group.get("rules", [])) for group in groups)


class AlertmanagerProbe:
    """Alertmanager's API v2 through one client (its auth, headers and CA), each request bounded."""

    def __init__(self, http):
        self.timeout_s = http.timeout_s
        self._http = http

    @classmethod
    def of(cls, target, environment) -> AlertmanagerProbe:
        from opsproof.probes import api_client

        return cls(api_client(target))

    def active(self, matchers: str) -> list[dict]:
        """Labels of the active alerts matching ``matchers``; silenced and inhibited ones are left out."""
        filters = [f'{m.label}{m.op}"{m.value}"' for m in parse_matchers(matchers)]
        query = urlencode([("active", "true"), ("silenced", "false"), ("inhibited", "false"),
                           *(("filter", f) for f in filters)])
        response = self._http.get(f"/api/v2/alerts?{query}")
        if response.status_code != 200 or not isinstance(response.json, list):
            raise ProbeError(f"GET /api/v2/alerts: status {response.status_code}: {response.text[:200]}")
        return [alert.get("labels", {}) for alert in response.json]

    def close(self) -> None:
        self._http.close()
