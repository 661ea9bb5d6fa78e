"""A run's metrics: pushed to a real Pushgateway and written for a real node_exporter, both scraped by a real
Prometheus; drill and backup metrics from the run's own records; no secret in any of them."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, ChecksRun
from opsproof.processes import free_port, stop_pid, wait_for_port
from opsproof.publish.metrics import push_request, run_registry, write_textfile

CANARY = "pgw-canary-0c41d9"


def _serve(binary: str, directory, *flags: str):
    """Start a Debian Prometheus binary on a free loopback port; yields (url, port)."""
    path = shutil.which(binary)
    assert path, f"{binary} is missing: scripts/setup.sh installs it (scripts/system-packages.txt)"
    port = free_port()
    log = open(directory / f"{binary}.log", "wb")  # noqa: SIM115 - open while it runs
    process = subprocess.Popen([path, f"--web.listen-address=127.0.0.1:{port}", *flags], stdout=log, stderr=log)
    try:
        wait_for_port(port, 30, binary, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_pid(process.pid)
        process.wait()
        log.close()


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    yield from _serve("prometheus-pushgateway", tmp_path_factory.mktemp("pushgateway"), "--persistence.file=")


@pytest.fixture(scope="module")
def textfile_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("textfiles")


@pytest.fixture(scope="module")
def node_exporter(tmp_path_factory, textfile_dir):
    yield from _serve("prometheus-node-exporter", tmp_path_factory.mktemp("node-exporter"),
                      "--collector.disable-defaults", "--collector.textfile",
                      f"--collector.textfile.directory={textfile_dir}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, pushgateway, node_exporter):
    """Scrapes node_exporter (job node) and the Pushgateway (job pushgateway, honor_labels) every 200 ms."""
    directory = tmp_path_factory.mktemp("prometheus")
    config = {"global": {"scrape_interval": "200ms"}, "scrape_configs": [
        {"job_name": "node", "static_configs": [{"targets": [node_exporter.removeprefix("http://")]}]},
        {"job_name": "pushgateway", "honor_labels": True,
         "static_configs": [{"targets": [pushgateway.removeprefix("http://")]}]}]}
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    yield from _serve("prometheus", directory, f"--config.file={directory / 'prometheus.yml'}",
                      f"--storage.tsdb.path={directory / 'data'}")


def query(prometheus_url: str, promql: str, timeout_s: float = 20) -> list[dict]:
    """The first non-empty answer to ``promql`` (waits for the scrapes that bring it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=5).json()
        if answer["data"]["result"]:
            return answer["data"]["result"]
        time.sleep(0.2)
    raise AssertionError(f"prometheus at {prometheus_url} never answered {promql}")


@pytest.fixture
def run_tcp_metrics(pytester, tmp_path, monkeypatch):
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)

    def run(name: str, *args: str) -> ChecksRun:
        env_path = tmp_path / f"{name}.yaml"
        env_path.write_text(yaml.safe_dump({"name": name, "tier": "staging",
                                            "tcp": {"gateway": {"host": "127.0.0.1", "port": free_port()}}}))
        result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                              str(ROOT / "checks" / "test_tcp.py"), "--env", str(env_path),
                                              "--reports-dir", str(tmp_path / "reports"), "--suite", "nightly", *args)
        return ChecksRun(result, tmp_path / "reports")

    return run


def test_run_metrics_reach_prometheus_through_textfile_and_pushgateway(run_tcp_metrics, textfile_dir, pushgateway,
                                                                        prometheus):
    gateway = pushgateway.replace("http://", f"http://opsproof:{CANARY}@")
    run = run_tcp_metrics("metrics", "--metrics-textfile", str(textfile_dir), "--pushgateway", gateway)
    assert run.ret == 1
    written, pushed = run.results["deliveries"]
    assert (written["channel"], written["outcome"]) == ("textfile", "sent")
    assert written["destination"] == str(textfile_dir / "opsproof_metrics_nightly.prom")
    assert [p.name for p in textfile_dir.iterdir()] == ["opsproof_metrics_nightly.prom"]  # no temporary left
    assert (pushed["channel"], pushed["outcome"], pushed["destination"]) == ("pushgateway", "sent", pushgateway)
    group, = [g for g in httpx.get(f"{pushgateway}/api/v1/metrics", timeout=5).json()["data"]
              if g["labels"].get("environment") == "metrics"]
    assert group["labels"] == {"job": "opsproof", "environment": "metrics", "suite": "nightly"}
    for job in ("node", "opsproof"):  # node_exporter's; the Pushgateway's keeps the pushed job (honor_labels)
        success, = query(prometheus, f'opsproof_run_success{{environment="metrics",job="{job}"}}')
        assert success["metric"]["suite"] == "nightly" and success["value"][1] == "0"
        check, = query(prometheus, f'opsproof_check_success{{environment="metrics",job="{job}"}}')
        assert {k: check["metric"][k] for k in ("check", "target", "severity", "outcome")} == {
            "check": "test_tcp_port_accepts_connections[gateway]", "target": "tcp.gateway", "severity": "p1",
            "outcome": "failed"}
        started, = query(prometheus, f'opsproof_run_start_timestamp_seconds{{environment="metrics",job="{job}"}}')
        assert abs(float(started["value"][1]) - datetime.fromisoformat(run.results["started_at"]).timestamp()) < 1
    assert query(prometheus, 'node_textfile_scrape_error{job="node"}')[0]["value"][1] == "0"
    stored = httpx.get(f"{pushgateway}/metrics", timeout=5).text + (textfile_dir / written["destination"]).read_text()
    assert CANARY not in stored and CANARY not in run.output
    assert CANARY not in (run.run_dir / "results.json").read_text()


def test_a_missing_textfile_directory_is_a_usage_error(run_tcp_metrics, tmp_path):
    run = run_tcp_metrics("metrics", "--metrics-textfile", str(tmp_path / "absent"))
    assert run.ret == 4
    assert f"--metrics-textfile {tmp_path / 'absent'}: not a directory" in run.output
    assert not (tmp_path / "reports").exists()


def _results(now: datetime) -> dict:
    """A results.json as a backup run with a restore drill writes it (checks/test_backups.py, test_restore.py)."""
    drill = {"kind": "restore", "backup_set": "main-db", "scenario": None, "outcome": "passed",
             "started_at": (now - timedelta(seconds=90)).isoformat(), "finished_at": now.isoformat(),
             "rto_target_s": 3600.0, "rto_achieved_s": 84.5, "rpo_target_s": 86400.0, "rpo_achieved_s": 5400.0}
    return {"environment": {"name": "prod"}, "suite": "backup", "exit_code": 0, "checks": [
        {"id": "checks/test_backups.py::test_latest_backup_within_rpo[main-db]", "kind": "backups",
         "target": "main-db", "where": "backups.main-db", "severity": "p0", "outcome": "passed", "gating": False,
         "measurements": [{"measure": "rpo_h", "value": 24.0},
                          {"measure": "age_h", "value": 1.5, "op": "<=", "limit": 24.0, "verdict": "ok"}]},
        {"id": "checks/test_backups.py::test_latest_backup_size_within_history[main-db]", "kind": "backups",
         "target": "main-db", "where": "backups.main-db", "severity": "p1", "outcome": "skipped", "gating": False,
         "measurements": []},
        {"id": "checks/test_restore.py::test_latest_backup_restores_and_verifies_within_rto[main-db]",
         "kind": "backups", "target": "main-db", "where": "backups.main-db", "severity": "p1", "outcome": "passed",
         "gating": False, "measurements": [], "drill": drill}]}


def samples(registry) -> dict[tuple, float]:
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("environment", "suite")))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_drill_and_backup_metrics_come_from_the_run_records(tmp_path):
    now = datetime.now(timezone.utc)
    registry = run_registry(_results(now), now - timedelta(seconds=120), now)
    found = samples(registry)
    drill = (("drill", "main-db"), ("kind", "restore"))
    assert found[("opsproof_drill_rto_seconds", drill)] == 84.5
    assert found[("opsproof_drill_rto_target_seconds", drill)] == 3600
    assert found[("opsproof_drill_rpo_seconds", drill)] == 5400
    assert found[("opsproof_drill_rpo_target_seconds", drill)] == 86400
    assert found[("opsproof_drill_success", drill)] == 1
    assert found[("opsproof_drill_timestamp_seconds", drill)] == pytest.approx(now.timestamp())
    assert found[("opsproof_backup_age_seconds", (("backup_set", "main-db"),))] == 5400  # age_h 1.5
    assert found[("opsproof_run_duration_seconds", ())] == 120
    assert found[("opsproof_run_checks", (("outcome", "skipped"),))] == 1
    assert found[("opsproof_run_gating_checks", ())] == 0
    assert not [k for k in found if k[0] == "opsproof_check_success" and ("outcome", "skipped") in k[1]]
    path = write_textfile(tmp_path, "prod", "backup", registry)
    assert path.name == "opsproof_prod_backup.prom" and path.read_text().endswith("\n")
    put = push_request("http://pgw:9091", "prod", "backup/monthly", registry)
    assert (put.method, put.url) == ("PUT", "http://pgw:9091/metrics/job/opsproof/environment/prod/suite@base64/"
                                            + "YmFja3VwL21vbnRobHk=")  # a / in a label value: base64
