"""A run as Prometheus metrics: for node_exporter's textfile collector and for a Pushgateway.

Rendered from the run's results.json (already redacted), so metrics say what the reports say. Every
series carries ``environment`` and ``suite``; names end in their unit (Prometheus naming). The file is
written by prometheus_client's ``write_to_textfile`` (a temporary file in the same directory, then
``rename``); the push is built by its ``push_to_gateway`` (PUT: the group's previous metrics go) and
sent by opsproof's bounded transport.

>>> registry = run_registry(results, started_at, finished_at)       # doctest: +SKIP
>>> write_textfile(Path("/var/lib/prometheus/node-exporter"), "production", "nightly", registry)  # doctest: +SKIP
PosixPath('/var/lib/prometheus/node-exporter/opsproof_production_nightly.prom')
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import push_to_gateway, write_to_textfile

from opsproof.outcomes import Outcome
from opsproof.publish.alerts import check_name
from opsproof.publish.transport import Request

PUSH_JOB = "opsproof"
PASSING = {Outcome.PASSED.value, Outcome.WARNED.value, Outcome.WAIVED.value}
AGE = re.compile(r"^age_(h|min|s)$")  # checks/test_backups.py: the latest backup's age, in the unit of its RPO
AGE_UNIT_S = {"h": 3600, "min": 60, "s": 1}
RUN = ("environment", "suite")
DRILL_VALUES = {"rto": "rto_achieved_s", "rto_target": "rto_target_s", "rpo": "rpo_achieved_s",
                "rpo_target": "rpo_target_s"}


def _gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, (*RUN, *labels), registry=registry)

    return {
        "start": gauge("opsproof_run_start_timestamp_seconds", "When the run started (Unix time)"),
        "duration": gauge("opsproof_run_duration_seconds", "How long the run took, collection to reports"),
        "success": gauge("opsproof_run_success", "1 when nothing gating failed and the run was not interrupted"),
        "exit_code": gauge("opsproof_run_exit_code", "The run's exit code (0 ok, 1 gating failure, 2 interrupted)"),
        "checks": gauge("opsproof_run_checks", "Checks of the run by outcome", "outcome"),
        "gating": gauge("opsproof_run_gating_checks", "Checks whose outcome blocks the gate"),
        "check": gauge("opsproof_check_success", "1 when the check passed (passed, warned, waived), 0 when it "
                                                 "failed or could not measure; skipped checks are left out",
                       "check", "target", "severity", "outcome"),
        "drill_at": gauge("opsproof_drill_timestamp_seconds", "When the drill finished (Unix time)", "kind", "drill"),
        "drill_ok": gauge("opsproof_drill_success", "1 when every step and verification of the drill passed",
                          "kind", "drill"),
        "rto": gauge("opsproof_drill_rto_seconds", "Recovery time the drill achieved", "kind", "drill"),
        "rto_target": gauge("opsproof_drill_rto_target_seconds", "Recovery time objective", "kind", "drill"),
        "rpo": gauge("opsproof_drill_rpo_seconds", "Data loss (recovery point) the drill achieved", "kind", "drill"),
        "rpo_target": gauge("opsproof_drill_rpo_target_seconds", "Recovery point objective", "kind", "drill"),
        "backup_age": gauge("opsproof_backup_age_seconds", "Age of the latest backup of the set when the run "
                                                          "measured it", "backup_set"),
    }


def run_registry(results: dict, started_at: datetime, finished_at: datetime) -> CollectorRegistry:
    """Every metric of one run (``results``: its results.json as a dict)."""
    registry = CollectorRegistry(auto_describe=True)
    g = _gauges(registry)
    run = (results["environment"]["name"], results["suite"])
    checks = results["checks"]
    g["start"].labels(*run).set(started_at.timestamp())
    g["duration"].labels(*run).set(round((finished_at - started_at).total_seconds(), 3))
    g["success"].labels(*run).set(int(results["exit_code"] == 0))
    g["exit_code"].labels(*run).set(results["exit_code"])
    g["gating"].labels(*run).set(sum(1 for c in checks if c.get("gating")))
    for outcome in Outcome:
        g["checks"].labels(*run, outcome.value).set(sum(1 for c in checks if c["outcome"] == outcome.value))
    ages: dict[str, float] = {}
    for check in checks:
        if check["outcome"] != Outcome.SKIPPED.value:
            g["check"].labels(*run, check_name(check["id"]), check.get("where") or "", check["severity"],
                              check["outcome"]).set(int(check["outcome"] in PASSING))
        if check.get("drill"):
            _drill(g, run, check["drill"])
        if check.get("kind") == "backups":
            for measurement in check.get("measurements", []):
                age = _age_s(measurement)
                if age is not None:
                    ages[check["target"]] = min(age, ages.get(check["target"], age))
    for backup_set, age in ages.items():
        g["backup_age"].labels(*run, backup_set).set(age)
    return registry


def _drill(g: dict[str, Gauge], run: tuple[str, str], drill: dict) -> None:
    labels = (*run, drill["kind"], drill.get("scenario") or drill.get("backup_set") or "")
    finished = drill.get("finished_at") or drill.get("started_at")
    if finished:
        g["drill_at"].labels(*labels).set(datetime.fromisoformat(finished).timestamp())
    g["drill_ok"].labels(*labels).set(int(drill.get("outcome") == "passed"))
    for gauge, key in DRILL_VALUES.items():
        if drill.get(key) is not None:
            g[gauge].labels(*labels).set(drill[key])


def _age_s(measurement: dict) -> float | None:
    match = AGE.match(measurement.get("measure", ""))
    if not match or not isinstance(measurement.get("value"), (int, float)):
        return None
    return float(measurement["value"]) * AGE_UNIT_S[match.group(1)]


def textfile_name(environment: str, suite: str) -> str:
    """One file per environment and suite, so each run replaces only its own: ``opsproof_prod_nightly.prom``."""
    return f"opsproof_{environment}_{suite}.prom"


def write_textfile(directory: Path, environment: str, suite: str, registry: CollectorRegistry) -> Path:
    path = directory / textfile_name(environment, suite)
    write_to_textfile(str(path), registry)
    return path


def push_request(gateway: str, environment: str, suite: str, registry: CollectorRegistry) -> Request:
    """The PUT that replaces group ``{job="opsproof", environment, suite}``, as prometheus_client builds it."""
    captured: list[Request] = []

    def capture(url, method, timeout, headers, data):
        captured.append(Request("pushgateway", "", url, data, dict(headers), method=method))
        return lambda: None

    push_to_gateway(gateway, PUSH_JOB, registry, {"environment": environment, "suite": suite}, handler=capture)
    return captured[0]
