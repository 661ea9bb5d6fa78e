"""Processes and resources for real: CPU busy % moved past warn by busy loops the test starts and stops,
memory used %, named processes (count, RSS, CPU %), and PM2 from npm running two small Node apps, one of
which crashes, in a PM2_HOME of its own (its daemon killed at teardown)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import testinfra  # noqa: F401 - loaded once, kept across in-process runs
import yaml
from ssh_server import sshd  # noqa: F401 - the module-scoped sshd fixture

from conftest import ROOT, ChecksRun

PM2 = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "pm2"
BUSY = "opsproof-busy-loop"


@pytest.fixture
def run_ops(pytester, tmp_path, monkeypatch):
    """Run checks/test_processes.py and test_host.py's memory checks against one host; no sandbox needed."""
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)

    def run(host: dict, *args: str) -> ChecksRun:
        env_path = tmp_path / "environments" / "ops.yaml"
        env_path.parent.mkdir(exist_ok=True)
        env_path.write_text(yaml.safe_dump({"name": "ops", "tier": "staging", "host": {"box": host}}))
        result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                              str(ROOT / "checks" / "test_processes.py"),
                                              str(ROOT / "checks" / "test_host.py"), "--env", str(env_path),
                                              "--reports-dir", str(tmp_path / "reports"), "-p", "no:randomly", *args)
        return ChecksRun(result, tmp_path / "reports")

    return run


def record(run: ChecksRun, check: str, item: str | None = None) -> dict:
    return next(r for r in run.results["checks"] if r["check"] == check and (item is None or f":{item}]" in r["id"]))


def measured(entry: dict, measure: str):
    return [m for m in entry["measurements"] if m["measure"] == measure][-1]["value"]


@pytest.fixture
def busy_loops():
    """Two processes spinning on a CPU each (this machine has two), found by their command line."""
    started = [subprocess.Popen([sys.executable, "-c", "while True: pass", BUSY]) for _ in range(2)]
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_cpu_used_moves_past_warn_with_busy_loops(run_ops, busy_loops):
    spec = {"host": "local://", "cpu_used_pct": {"warn": 60, "crit": 100}, "cpu_sample_s": 1.5,
            "process_checks": [{"name": "spinners", "pattern": BUSY, "min_count": 2, "max_count": 2,
                                "cpu_pct": {"warn": 5, "crit": 250}, "rss_mb": {"warn": 500, "crit": 1000}}]}
    run = run_ops(spec, "-k", "cpu_used or process_running")
    cpu = record(run, "test_cpu_used_below_limit")
    busy = measured(cpu, "cpu_used_pct")
    assert cpu["outcome"] == "warned" and busy >= 60, cpu
    assert cpu["message"] == f"cpu_used_pct ({busy:g}) <= 60 on host.box (warn)" or \
        cpu["message"].startswith("cpu_used_pct (") and cpu["message"].endswith(") <= 60 on host.box (warn)")
    assert len(measured(cpu, "top_by_cpu")) == 5 and len(measured(cpu, "top_by_memory")) == 5
    spinners = record(run, "test_process_running_within_limits", "spinners")
    # each spins a whole core on an idle machine; past 5 % together even on a shared machine at load 20
    assert spinners["outcome"] == "warned", spinners
    assert measured(spinners, "spinners count") == 2
    assert sorted(measured(spinners, "spinners pids")) == sorted(p.pid for p in busy_loops)
    for process in busy_loops:
        process.kill()
        process.wait()
    after = record(run_ops(spec, "-k", "cpu_used or process_running"), "test_process_running_within_limits",
                   "spinners")
    assert after["outcome"] == "failed" and after["message"] == "spinners count (0) >= 2 on host.box"


def test_memory_used_and_a_missing_process_over_ssh(run_ops, sshd):
    spec = {**sshd, "memory_used_pct": {"warn": 99.9, "crit": 100}, "memory_available_pct": {"warn": 0.1, "crit": 0},
            "process_checks": [{"name": "sshd", "comm": "sshd", "rss_mb": {"crit": 4096}},
                               {"name": "ghost", "pattern": "opsproof-no-such-daemon"}]}
    run = run_ops(spec, "-k", "memory or process_running")
    used = record(run, "test_memory_used_below_limit")
    available = record(run, "test_memory_available_above_floor")
    assert used["outcome"] == "passed" and available["outcome"] == "passed", run.output
    assert abs(measured(used, "memory_used_pct") + measured(available, "memory_available_pct") - 100) < 5
    assert record(run, "test_process_running_within_limits", "sshd")["outcome"] == "passed"
    assert record(run, "test_process_running_within_limits", "ghost")["message"] == "ghost count (0) >= 1 on host.box"
    tight = run_ops({**spec, "memory_used_pct": {"warn": 0.5, "crit": 1}}, "-k", "memory_used")
    assert record(tight, "test_memory_used_below_limit")["message"].endswith(") <= 1 on host.box (crit)")


# --- PM2, from npm, for real ------------------------------------------------------------------------

WEB = "require('http').createServer((q, s) => s.end('ok')).listen(0); setInterval(() => {}, 1000);\n"
CRASHER = "console.error('ERROR boot failed'); process.exit(1);\n"


def _pm2(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PM2), *args], env={**os.environ, "PM2_HOME": str(home)}, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def pm2_apps(tmp_path_factory):
    """A PM2 daemon of its own (PM2_HOME in a temporary directory) running web (stays up) and crasher
    (exits at once; errored after its restarts run out); the daemon is killed at teardown."""
    if not PM2.exists():
        pytest.skip(f"pm2 is missing at {PM2}: run scripts/setup.sh (npm install --prefix .venv/node pm2@7)")
    base = tmp_path_factory.mktemp("pm2")
    home = base / "home"
    (base / "web.js").write_text(WEB)
    (base / "crasher.js").write_text(CRASHER)
    (base / "ecosystem.config.js").write_text(textwrap.dedent(f"""\
        module.exports = {{apps: [
          {{name: "web", script: "{base / 'web.js'}"}},
          {{name: "crasher", script: "{base / 'crasher.js'}", min_uptime: 10000, max_restarts: 3}},
        ]}};
        """))
    try:
        assert _pm2(home, "ping").returncode == 0
        assert _pm2(home, "start", str(base / "ecosystem.config.js")).returncode == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            apps = {a["name"]: a["pm2_env"]["status"] for a in json.loads(_pm2(home, "jlist").stdout.splitlines()[-1])}
            if apps == {"web": "online", "crasher": "errored"}:
                break
            time.sleep(0.3)
        assert apps == {"web": "online", "crasher": "errored"}, apps
        yield home
    finally:
        _pm2(home, "kill")
        pid_file = home / "pm2.pid"
        assert not pid_file.exists() or not Path(f"/proc/{pid_file.read_text().strip()}").exists()


def test_pm2_apps_online_restarts_and_memory(run_ops, pm2_apps):
    pm2 = {"command": str(PM2), "home": str(pm2_apps), "restarts": {"warn": 1, "crit": 1},
           "memory_mb": {"warn": 300, "crit": 600}}
    run = run_ops({"host": "local://", "pm2": pm2}, "-k", "pm2")
    online = record(run, "test_pm2_apps_online")
    assert online["message"] == "pm2_apps_not_online ({'crasher': 'errored'}) == {} on host.box", run.output
    restarts = record(run, "test_pm2_restarts_within_limit")
    crasher_restarts = measured(restarts, "crasher restarts")
    assert restarts["outcome"] == "failed" and crasher_restarts >= 2
    assert restarts["message"] == f"crasher restarts ({crasher_restarts}) <= 1 on host.box (crit)"
    assert measured(restarts, "web restarts") == 0
    memory = record(run, "test_pm2_memory_within_limit")
    assert memory["outcome"] == "passed" and 5 < measured(memory, "web memory_mb") < 300

    only_web = run_ops({"host": "local://", "pm2": {**pm2, "apps": ["web"], "memory_mb": {"crit": 1}}}, "-k", "pm2")
    assert record(only_web, "test_pm2_apps_online")["outcome"] == "passed"
    assert record(only_web, "test_pm2_memory_within_limit")["message"].startswith("web memory_mb (")


def test_pm2_without_a_daemon_fails_and_starts_none(run_ops, tmp_path):
    if not PM2.exists():
        pytest.skip(f"pm2 is missing at {PM2}: run scripts/setup.sh (npm install --prefix .venv/node pm2@7)")
    home = tmp_path / "pm2-empty"
    home.mkdir()
    run = run_ops({"host": "local://", "pm2": {"command": str(PM2), "home": str(home)}}, "-k", "pm2_apps_online")
    assert record(run, "test_pm2_apps_online")["message"] == (
        f"pm2_daemon ('not running') == 'running' on host.box: no PM2 daemon for PM2_HOME {home} (none was started)")
    assert not (home / "pm2.pid").exists() and list(home.iterdir()) == []
