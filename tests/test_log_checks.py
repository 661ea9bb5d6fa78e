"""Log checks for real: a file of timestamped lines inside and outside the window (here and over ssh, and the
same lines as a command's output), a startup line required since a time, a sparse file of several GB read
in bounded time and memory, journald where it runs, and every pod's log through the Kubernetes API emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import testinfra  # noqa: F401 - loaded once, kept across in-process runs
import yaml
from kubernetes import client as _client  # noqa: F401 - loaded once, kept across runs
from ssh_server import sshd  # noqa: F401 - the module-scoped sshd fixture
from test_kubernetes_checks import NS, PODS, Cluster

from conftest import ROOT, ChecksRun

CHECK = "test_host_log_pattern_within_limits"
CANARY = "canary-log-token-41c0aa"
NOW = datetime.now(UTC)


def stamp(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_log(path: Path) -> None:
    """Three errors two hours ago, two and a traceback ten minutes ago, the api's startup 20 minutes ago."""
    lines = [f"{stamp(120 + i)} ERROR proof generation failed (old {i})" for i in (3, 2, 1)]
    lines += [f"{stamp(20)} INFO Started api on :8080"]
    lines += [f"{stamp(10)} ERROR proof generation failed", f"{stamp(9)} ERROR upstream token={CANARY}",
              "Traceback (most recent call last):", '  File "app.py", line 3', f"{stamp(8)} INFO ok"]
    path.write_text("\n".join(lines) + "\n")


def log_checks(path: Path) -> list[dict]:
    iso = {"format": "iso"}
    return [
        {"name": "errors_1h", "file": str(path), "pattern": "ERROR|Traceback", "window": "1h",
         "count": {"warn": 1, "crit": 2}, "timestamps": iso},
        {"name": "errors_5m", "file": str(path), "pattern": "ERROR|Traceback", "window": "5m",
         "count": {"warn": 1, "crit": 2}, "timestamps": iso},
        {"name": "started", "file": str(path), "pattern": "Started api", "present": True,
         "since": (NOW - timedelta(minutes=30)).isoformat(), "timestamps": iso},
        {"name": "worker_started", "file": str(path), "pattern": "Started worker", "present": True,
         "since": "30m", "timestamps": iso},
        {"name": "errors_run", "run": f"cat {path}", "pattern": "ERROR", "window": "1h", "timestamps": iso,
         "count": {"crit": 10}},
    ]


@pytest.fixture
def run_logs(pytester, tmp_path, monkeypatch):
    """Run checks/test_logs.py against an environment; no sandbox needed."""
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)
    monkeypatch.setenv("LOG_TOKEN", CANARY)

    def run(environment: dict, *args: str) -> ChecksRun:
        env_path = tmp_path / "environments" / "logs.yaml"
        env_path.parent.mkdir(exist_ok=True)
        env_path.write_text(yaml.safe_dump({"name": "logs", "tier": "staging", **environment}))
        result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                              str(ROOT / "checks" / "test_logs.py"), "--env", str(env_path),
                                              "--reports-dir", str(tmp_path / "reports"), "-p", "no:randomly", *args)
        return ChecksRun(result, tmp_path / "reports")

    return run


def host(spec: dict, logs: list[dict]) -> dict:
    # a command that names the token registers it as a secret, so it is redacted from every artifact
    token_user = {"name": "token_user", "run": "true", "env": {"T": "${LOG_TOKEN}"}}
    return {"host": {"box": {**spec, "timeout_s": 5, "logs": logs, "commands": [token_user]}}}


def by_log(run: ChecksRun) -> dict[str, dict]:
    return {r["id"].split(":")[-1].rstrip("]"): r for r in run.results["checks"] if r["check"] == CHECK}


def measured(record: dict, measure: str):
    return next(m["value"] for m in record["measurements"] if m["measure"] == measure)


def _judged(run: ChecksRun, tmp_path: Path) -> None:
    seen = by_log(run)
    assert {name: r["outcome"] for name, r in seen.items()} == {
        "errors_1h": "failed", "errors_5m": "passed", "started": "passed", "worker_started": "failed",
        "errors_run": "passed"}, run.output
    assert seen["errors_1h"]["message"] == "errors_1h matching_lines (3) <= 2 on host.box (crit)"
    assert seen["worker_started"]["message"] == (
        "worker_started matching_lines (0) >= 1 on host.box: /Started worker/")
    lines = measured(seen["errors_1h"], "errors_1h matches")
    assert [entry["line"] for entry in lines] == [
        f"{stamp(10)} ERROR proof generation failed", f"{stamp(9)} ERROR upstream token=***",
        "Traceback (most recent call last):"]
    assert lines[2]["time"] == datetime.fromisoformat(stamp(9).replace("Z", "+00:00")).isoformat()
    assert measured(seen["errors_run"], "errors_run source") == "command errors_run"  # its name, not its text
    leaks = [str(p) for p in (tmp_path / "reports").rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == [] and CANARY not in run.output


def test_file_lines_judged_by_their_own_timestamps(run_logs, tmp_path):
    path = tmp_path / "app.log"
    write_log(path)
    _judged(run_logs(host({"host": "local://"}, log_checks(path))), tmp_path)


def test_file_lines_over_ssh(run_logs, tmp_path, sshd):
    path = tmp_path / "app.log"
    write_log(path)
    _judged(run_logs(host(sshd, log_checks(path))), tmp_path)


def test_a_tail_that_starts_inside_the_window_warns(run_logs, tmp_path):
    path = tmp_path / "app.log"
    path.write_text("".join(f"{stamp(100 - i)} INFO filler {i}\n" for i in range(60)))  # 2.7 KB, all recent
    check = {**log_checks(path)[0], "window": "3h", "max_bytes": 1024, "count": {"crit": 100}}
    run = run_logs(host({"host": "local://"}, [check]))
    record = by_log(run)["errors_1h"]
    assert record["outcome"] == "warned", run.output
    assert "errors_1h window_covered (false) == true on host.box: the last" in record["message"]


@pytest.mark.parametrize("source", [{"file": "/var/log/app.log"}, {"run": "docker logs api"}])
def test_window_without_timestamps_is_rejected_at_load(run_logs, source):
    check = {"name": "errors", **source, "pattern": "ERROR", "window": "1h", "count": {"crit": 1}}
    run = run_logs(host({"host": "local://"}, [check]))
    assert run.ret == 4
    assert "host.box.logs.0" in run.output and "give timestamps" in run.output


SCAN = textwrap.dedent("""\
    import json, sys, time
    from opsproof.logs import LogScan, Stamps, scan_file
    def peak_mb():  # VmHWM: this program's own peak (ru_maxrss would carry the forking parent's over exec)
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    before = peak_mb()
    started = time.monotonic()
    scan = LogScan("ERROR", stamps=Stamps("iso"), cutoff=time.time() - 3600)
    size = scan_file(sys.argv[1], scan, 64 << 20)
    print(json.dumps({"s": time.monotonic() - started, "count": scan.count, "size": size,
                      "read": scan.bytes_read, "dropped": scan.lines_dropped,
                      "peak_rss_mb": peak_mb(), "rss_growth_mb": peak_mb() - before}))
    """)


def test_sparse_file_of_several_gb_read_in_bounded_time_and_memory(tmp_path):
    path = tmp_path / "huge.log"
    with open(path, "wb") as file:
        file.truncate(6 << 30)  # 6 GB of hole
        file.seek(0, 2)
        file.write(b"\n")  # the hole ends as a line of its own: one "line" of 6 GB of NULs
        file.writelines(f"{stamp(minutes)} {'ERROR' if minutes % 10 == 0 else 'INFO'} tick {minutes}\n".encode() for minutes in range(50, 0, -1))
    assert path.stat().st_blocks * 512 < 1 << 20  # sparse: a few KB on disk
    out = subprocess.run([sys.executable, "-c", SCAN, str(path)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    measured_run = json.loads(out.stdout or out.stderr)
    print("sparse 6 GB file:", measured_run)
    assert measured_run["count"] == 5 and measured_run["size"] > 6 << 30
    assert measured_run["read"] == 64 << 20  # only its last 64 MiB
    assert measured_run["dropped"] >= 1  # the hole is one "line" far past MAX_LINE: dropped, not held
    assert measured_run["s"] < 30, measured_run  # about 0.1 s idle
    assert measured_run["rss_growth_mb"] < 48, measured_run  # chunks of 1 MiB, a line of at most 1 MiB
    assert measured_run["peak_rss_mb"] < 64, measured_run


def test_journald_unit(run_logs):
    if not Path("/run/systemd/journal/socket").exists() or subprocess.run(
            ["systemctl", "is-system-running"], capture_output=True).returncode not in (0, 1):
        pytest.skip("journald does not run here (no /run/systemd/journal/socket: this machine has no systemd)")
    unit = f"opsproof-log-test-{os.getpid()}"
    subprocess.run(["systemd-run", "--unit", unit, "--wait", "sh", "-c", "echo Started opsproof test"], check=True)
    check = {"name": "unit_started", "journald": f"{unit}.service", "pattern": "Started opsproof test",
             "present": True, "since": "5m"}
    run = run_logs(host({"host": "local://"}, [check]))
    assert by_log(run)["unit_started"]["outcome"] == "passed", run.output


# --- Kubernetes: every pod's log, through the API emulator ------------------------------------------

POD_LOGS = {  # what each pod's api container wrote, and how many seconds ago
    PODS[0]["metadata"]["name"]: [(7200, "ERROR proof generation failed (old)"), (300, "INFO Started api"),
                                  (120, "ERROR proof generation failed")],
    PODS[1]["metadata"]["name"]: [(60, "ERROR proof generation failed"), (30, "INFO ok")],
}


@pytest.fixture
def pod_log_cluster(httpserver):
    """The emulator of tests/test_kubernetes_checks.py, answering pod logs as the API does: plain text, only
    the lines of the last ``sinceSeconds``, at most ``limitBytes``."""
    import re

    from werkzeug import Response

    cluster = Cluster(httpserver)

    def logs(request):
        cluster.requests.append(f"{request.method} {request.full_path.rstrip('?')}")
        name = request.path.split("/")[-2]
        since = int(request.args.get("sinceSeconds", 10**9))
        text = "".join(f"{stamp(age / 60)} {line}\n" for age, line in POD_LOGS.get(name, []) if age <= since)
        return Response(text[-int(request.args.get("limitBytes", 10**9)):], content_type="text/plain")

    httpserver.expect_request(re.compile(rf"^/api/v1/namespaces/{NS}/pods/[^/]+/log$"),
                              method="GET").respond_with_handler(logs)
    return cluster


def test_pod_logs_of_every_pod_of_a_workload(run_logs, pod_log_cluster, tmp_path):
    checks = [{"name": "errors_15m", "workload": "api", "container": "api", "pattern": "ERROR", "window": "15m",
               "count": {"warn": 1, "crit": 1}},
              {"name": "started", "workload": "api", "pattern": "Started api", "present": True, "since": "10m"},
              {"name": "errors_1m", "workload": "api", "pattern": "ERROR", "window": "1m", "count": {"crit": 1}}]
    target = {"kubeconfig": pod_log_cluster.kubeconfig(tmp_path), "namespace": NS, "request_timeout_s": 2,
              "logs": checks}
    run = run_logs({"kubernetes": {"staging": target}}, "-k", "pod_log")
    seen = {r["id"].split(":")[-1].rstrip("]"): r for r in run.results["checks"]
            if r["check"] == "test_pod_log_pattern_within_limits"}
    assert {name: r["outcome"] for name, r in seen.items()} == {
        "errors_15m": "failed", "started": "passed", "errors_1m": "passed"}, run.output
    assert seen["errors_15m"]["message"] == "errors_15m matching_lines (2) <= 1 on kubernetes.staging (crit)"
    asked = [r for r in pod_log_cluster.requests if "/log" in r]
    assert asked[:2] == list(
        f"GET /api/v1/namespaces/{NS}/pods/{p['metadata']['name']}/log?container=api&limitBytes=67108864"
        f"&sinceSeconds=900" for p in PODS)
