"""Alerting checks against real Debian servers: Prometheus behind bcrypt basic auth and TLS from a private CA
(its own --web.config.file), its rules swapped by SIGHUP, and Alertmanager's API v2."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from alertmanager import alertmanager  # noqa: F401 - the module's real Alertmanager

from opsproof.processes import free_port, stop_pid, wait_for_port
from opsproof.sandbox.https import issue, write_pair

USER, PASSWORD = "opsproof", "prom-basic-7c2e91d4"
HEALTHY_RULES = """\
groups:
  - name: api
    rules:
      - alert: ApiDown
        expr: vector(1) > 1
        labels: {severity: critical}
      - record: api:one
        expr: vector(1)
"""
FAULTY_RULES = HEALTHY_RULES + """\
      - alert: AlwaysCritical
        expr: vector(1)
        labels: {severity: critical}
      - alert: OnlyAWarning
        expr: vector(1)
        labels: {severity: warning}
  - name: broken
    rules:
      - record: broken:duplicate
        expr: label_replace(vector(1), "a", "1", "", "") or label_replace(vector(2), "a", "2", "", "")
        labels: {a: same}
"""


def trusting(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


@dataclass(frozen=True)
class SecuredPrometheus:
    url: str
    ca_file: str
    rules: Path
    pid: int

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", auth=(USER, PASSWORD), verify=trusting(self.ca_file), timeout=5)

    def wait_ready(self, within_s: float = 30) -> None:
        """Its port opens before its storage: it answers 503 until ready, and a SIGHUP before then is lost."""
        deadline = time.monotonic() + within_s
        while self.get("/-/ready").status_code != 200:
            assert time.monotonic() < deadline, f"prometheus not ready within {within_s:g} s"
            time.sleep(0.1)

    def load(self, rules: str, evaluated: set[str]) -> None:
        """New rules by SIGHUP, as an operator reloads; back once every rule named has been evaluated."""
        self.rules.write_text(rules)
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            groups = self.get("/api/v1/rules").json()["data"]["groups"]
            seen = {r["name"] for g in groups for r in g["rules"] if not r["lastEvaluation"].startswith("0001")}
            names = {r["name"] for g in groups for r in g["rules"]}
            if evaluated <= seen and names == evaluated:
                return
            time.sleep(0.2)
        raise AssertionError(f"prometheus never evaluated {evaluated}")


@pytest.fixture(scope="module")
def secured_prometheus(tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/setup.sh installs it (apt-get install prometheus)"
    import bcrypt

    directory = tmp_path_factory.mktemp("secured-prometheus")
    ca = issue("alerting test CA", [], days=2, ca=True)
    ca_file, _ = write_pair(ca, directory, "ca")
    cert, key = write_pair(issue("localhost", ["localhost", "127.0.0.1"], issuer=ca, days=2), directory, "server")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # low cost: a quick test server
    (directory / "web.yml").write_text(f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n"
                                       f"basic_auth_users: {{{USER}: '{hashed}'}}\n")
    rules = directory / "rules.yml"
    rules.write_text(HEALTHY_RULES)
    (directory / "prometheus.yml").write_text(f"global: {{evaluation_interval: 500ms}}\nrule_files: [{rules}]\n")
    port = free_port()
    log = open(directory / "prometheus.log", "wb")  # noqa: SIM115 - open while prometheus runs
    process = subprocess.Popen([binary, f"--config.file={directory / 'prometheus.yml'}",
                                f"--web.config.file={directory / 'web.yml'}",
                                f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=log)
    try:
        wait_for_port(port, 30, "prometheus", process)
        server = SecuredPrometheus(f"https://127.0.0.1:{port}", str(ca_file), rules, process.pid)
        server.wait_ready()
        server.load(HEALTHY_RULES, {"ApiDown", "api:one"})
        yield server
    finally:
        stop_pid(process.pid)
        process.wait()
        log.close()


def prometheus_environment(server: SecuredPrometheus, **changes) -> dict:
    target = {"url": server.url, "timeout_s": 3, "ca_file": server.ca_file,
              "auth": {"basic_user": USER, "basic_password": "${TEST_PROM_PASSWORD}"},
              "queries": [{"name": "one", "query": "api:one", "floor": {"crit": 1}}],
              "alerts": {}, "rules": {"min_rules": 2}, **changes}
    return {"tier": "sandbox", "prometheus": {"main": target}}


def outcomes(run) -> dict[str, tuple[str, str]]:
    return {r["id"].split("::")[-1]: (r["outcome"], r["message"]) for r in run.results["checks"]
            if r["outcome"] != "skipped"}


@pytest.fixture
def prom_password(monkeypatch):
    monkeypatch.setenv("TEST_PROM_PASSWORD", PASSWORD)


def test_prometheus_behind_basic_auth_and_a_private_ca_passes(secured_prometheus, prom_password, write_env,
                                                              run_checks):
    assert secured_prometheus.get("/api/v1/rules").status_code == 200
    anonymous = httpx.get(f"{secured_prometheus.url}/api/v1/rules", verify=trusting(secured_prometheus.ca_file))
    assert anonymous.status_code == 401
    run = run_checks(write_env(prometheus_environment(secured_prometheus)), "-k", "alert or rule or promql")
    assert run.ret == 0, run.output
    assert outcomes(run) == {
        "test_no_critical_alert_firing_in_prometheus[main]": ("passed", ""),  # no alert at all: 0, not an error
        "test_alert_rules_are_loaded[main]": ("passed", ""),
        "test_rule_groups_evaluate_without_errors[main]": ("passed", ""),
        "test_promql_query_within_threshold[main:one]": ("passed", ""),
    }
    firing = run.record("test_no_critical_alert_firing_in_prometheus")["measurements"]
    assert {"measure": "alerts_firing", "value": 0, "op": "<=", "limit": 0, "verdict": "ok"} in firing
    assert PASSWORD not in run.run_dir.joinpath("results.json").read_text()


def test_without_the_ca_or_with_a_wrong_password_nothing_is_measured(secured_prometheus, write_env, run_checks,
                                                                       monkeypatch):
    monkeypatch.setenv("TEST_PROM_PASSWORD", "not-the-password-1")
    wrong = run_checks(write_env(prometheus_environment(secured_prometheus)), "-k", "rules_are_loaded")
    assert wrong.record("test_alert_rules_are_loaded")["message"] == "could not measure on prometheus.main: rules: " \
                                                                      "status 401"
    monkeypatch.setenv("TEST_PROM_PASSWORD", PASSWORD)
    no_ca = run_checks(write_env(prometheus_environment(secured_prometheus, ca_file=None)), "-k", "rules_are_loaded")
    message = no_ca.record("test_alert_rules_are_loaded")["message"]
    assert no_ca.ret == 1 and "CERTIFICATE_VERIFY_FAILED" in message


def test_a_firing_critical_alert_and_a_failing_rule_group_fail(secured_prometheus, prom_password, write_env,
                                                               run_checks):
    secured_prometheus.load(FAULTY_RULES, {"ApiDown", "api:one", "AlwaysCritical", "OnlyAWarning", "broken:duplicate"})
    try:
        run = run_checks(write_env(prometheus_environment(secured_prometheus)), "-k", "alert or rule")
        watch_warnings = run_checks(write_env(prometheus_environment(
            secured_prometheus, alerts={"matchers": 'severity=~"critical|warning"', "ignore": ["AlwaysCritical"]})),
            "-k", "alert_firing")
    finally:
        secured_prometheus.load(HEALTHY_RULES, {"ApiDown", "api:one"})
    found = outcomes(run)
    assert run.ret == 1
    assert found["test_no_critical_alert_firing_in_prometheus[main]"] == (
        "failed", "alerts_firing (1) <= 0 on prometheus.main: AlwaysCritical")
    outcome, message = found["test_rule_groups_evaluate_without_errors[main]"]
    assert outcome == "failed" and message.startswith("failing_rules ({'broken/broken:duplicate': 'vector contains "
                                                      "metrics with the same labelset after applying rule labels")
    assert found["test_alert_rules_are_loaded[main]"] == ("passed", "")
    assert watch_warnings.record("test_no_critical_alert_firing_in_prometheus")["message"] == (
        "alerts_firing (1) <= 0 on prometheus.main: OnlyAWarning")


def post_alert(url: str, severity: str, ends_in_s: float = 600) -> None:
    now = datetime.now(timezone.utc)
    alert = {"labels": {"alertname": f"Backup{severity.title()}", "severity": severity},
             "startsAt": (now - timedelta(hours=1)).isoformat(),
             "endsAt": (now + timedelta(seconds=ends_in_s)).isoformat()}
    httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def test_alertmanager_passes_empty_and_with_a_warning_then_fails_on_a_critical_alert(
        alertmanager, write_env, run_checks):  # noqa: F811 - the module's Alertmanager
    path = write_env({"tier": "sandbox", "alertmanager": {"am": {"url": alertmanager.url, "timeout_s": 3}}})
    empty = run_checks(path, "-k", "alertmanager")
    assert empty.ret == 0 and empty.record("test_no_critical_alert_active_in_alertmanager")["outcome"] == "passed"
    post_alert(alertmanager.url, "warning")
    warned = run_checks(path, "-k", "alertmanager")
    assert warned.ret == 0, warned.output
    post_alert(alertmanager.url, "critical")
    try:
        critical = run_checks(path, "-k", "alertmanager")
    finally:
        post_alert(alertmanager.url, "critical", ends_in_s=-1)  # resolved: endsAt in the past
        post_alert(alertmanager.url, "warning", ends_in_s=-1)
    record = critical.record("test_no_critical_alert_active_in_alertmanager")
    assert critical.ret == 1 and record["message"] == "alerts_active (1) <= 0 on alertmanager.am: BackupCritical"
