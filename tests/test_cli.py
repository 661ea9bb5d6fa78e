"""`opsproof run` is the same run as plain pytest, with the same exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from conftest import read_results, sandbox_environment


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
    assert result.stderr.strip().endswith("under-test.yaml: http.api.url: String should match pattern '^https?://\\S+$'")
    assert "Traceback" not in result.stderr
