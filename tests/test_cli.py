"""`opsproof run` is the same run as plain pytest, with the same exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx
import pytest

from conftest import ROOT, read_results, sandbox_environment


def opsproof(*args: str, env_vars: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsproof.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env_vars)


def test_run_smoke_passes_then_gates_on_a_p0_failure(sandbox, write_env, tmp_path, api_faults):
    env_vars = {**os.environ, "TEST_PG_PASSWORD": sandbox.pg_password, "TEST_REDIS_PASSWORD": sandbox.redis_password}
    path = write_env(sandbox_environment(sandbox))
    args = ("run", "--env", str(path), "--suite", "smoke", "--reports-dir", str(tmp_path / "reports"))
    httpx.get(f"{sandbox.api_url}/health", timeout=5)  # the API's first request opens its pools: ~1 s under load
    passing = opsproof(*args, env_vars=env_vars)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    verdict = next(line for line in passing.stdout.splitlines() if line.startswith("opsproof: PASS (gate p1): "))
    assert "passed" in verdict and not any(word in verdict for word in ("failed", "error")), verdict
    api_faults(status=500)
    failing = opsproof(*args, env_vars=env_vars)
    assert failing.returncode == 1
    assert "status_code (500) == 200 on http.api" in failing.stdout
    written = sorted((tmp_path / "reports").glob("*/*/results.json"))
    assert [read_results(path)["exit_code"] for path in written] == [0, 1]


def test_run_with_bad_environment_exits_4(tmp_path, write_env):
    path = write_env({"tier": "staging", "http": {"api": {"url": "ftp://nope"}}})
    result = subprocess.run([sys.executable, "-m", "opsproof.cli", "run", "--env", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert result.stderr.strip().endswith("under-test.yaml: http.api.url: must be an http:// or https:// URL")
    assert "Traceback" not in result.stderr


@contextmanager
def waiting_api(write_env, timeout_s: float):
    """A listener that accepts and never answers, and an environment whose health check waits on it for
    ``timeout_s``: ``listener.accept()`` returns once the run's first check is under way."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(60)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        yield listener, write_env({"tier": "staging", "http": {"api": {"url": url, "timeout_s": timeout_s,
                                                                        "health": {"path": "/health"}}}})


@pytest.mark.parametrize("runner", ["opsproof run", "pytest"])
def test_sigterm_ends_the_run_like_ctrl_c_with_reports_history_and_exit_2(runner, write_env, tmp_path):
    """A CI cancel (SIGTERM) during a check that waits: the three reports and the history record are
    written, and the run exits 2 (interrupted)."""
    with waiting_api(write_env, timeout_s=30) as (listener, path):
        reports = tmp_path / "reports"
        if runner == "opsproof run":
            command = ["-m", "opsproof.cli", "run", "--env", str(path), "--reports-dir", str(reports)]
        else:
            command = ["-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(ROOT / "checks"),
                       "--env", str(path), "--reports-dir", str(reports), "-p", "no:cacheprovider"]
        process = subprocess.Popen([sys.executable, *command], cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        connection, _ = listener.accept()  # the run is under way: its first check is waiting for an answer
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        stopped_s = time.monotonic() - started
        connection.close()
    assert process.returncode == 2, output
    (run_dir,) = [p for p in (reports / "under-test").iterdir() if p.is_dir()]
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "junit.xml", "results.json"}
    results = read_results(run_dir / "results.json")
    assert results["interrupted"] is True and results["exit_code"] == 2
    (record,) = [json.loads(line) for line in (reports / "under-test" / "history.jsonl").read_text().splitlines()]
    assert sorted(a["name"] for a in record["artifacts"]) == ["junit.xml", "report.html", "results.json"]
    assert record["verdict"] == results["verdict"]
    assert stopped_s < 10, f"the run took {stopped_s:.1f} s to stop after SIGTERM"


def test_a_reader_that_quits_loses_the_output_not_the_verdict_or_the_reports(write_env, tmp_path):
    """``opsproof run | head -1``: once nobody reads the output, the run goes on, exits with its verdict
    and writes its three reports and the history record."""
    with waiting_api(write_env, timeout_s=2) as (listener, path):  # the health check fails after 2 s
        reports = tmp_path / "reports"
        process = subprocess.Popen([sys.executable, "-m", "opsproof.cli", "run", "--env", str(path), "--reports-dir",
                                    str(reports)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout.read(1)  # the header is out
        connection, _ = listener.accept()  # the first check is under way
        process.stdout.close()  # the reader quits: what the run prints next has nowhere to go
        stderr = process.communicate(timeout=60)[1].decode()
        connection.close()
    assert process.returncode == 1, stderr  # the health check's failure gates; not an internal error (3)
    assert "INTERNALERROR" not in stderr and "Traceback" not in stderr and "could not write" not in stderr
    (run_dir,) = [p for p in (reports / "under-test").iterdir() if p.is_dir()]
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "junit.xml", "results.json"}
    assert read_results(run_dir / "results.json")["verdict"].startswith("FAIL (gate p1)")
    assert (reports / "under-test" / "history.jsonl").read_text().count("\n") == 1
