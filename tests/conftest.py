"""Fixtures for opsproof's own tests: a real sandbox, fault servers, and runs of the real checks."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from pathlib import Path

import httpcore  # noqa: F401 - imported once here so pytester's in-process runs keep them loaded
import httpx
import jsonschema
import psycopg  # noqa: F401
import pytest
import redis  # noqa: F401
import yaml

from opsproof import sandbox as sandbox_module
from opsproof.record.results import shipped_schema

ROOT = Path(__file__).resolve().parent.parent
httpx.Client().close()  # loads httpx's lazy imports before pytester snapshots sys.modules


@pytest.fixture(scope="session")
def sandbox():
    """A real sandbox (PostgreSQL, Redis, demo API) for the whole test session."""
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-test-sandbox-"))
    started = sandbox_module.up(state_dir)
    yield started
    sandbox_module.down(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def api_faults(sandbox):
    """Inject faults into the sandbox API (``api_faults(health="degraded")``); cleared afterwards."""

    def inject(**settings):
        httpx.post(f"{sandbox.api_url}/_sandbox/faults", json=settings, timeout=5).raise_for_status()

    yield inject
    httpx.delete(f"{sandbox.api_url}/_sandbox/faults", timeout=5)


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.fixture
def refused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return port


def sandbox_environment(sandbox, **overrides) -> dict:
    """An environment (as a dict) pointing at the test sandbox; ``overrides`` replace whole sections."""
    environment = {
        "tier": "sandbox",
        "http": {"api": {
            "url": sandbox.api_url, "timeout_s": 3,
            "health": {"path": "/health", "status": 200, "json": {"status": "healthy"},
                       "response_time_ms": {"warn": 1000, "crit": 5000}},  # generous: a loaded CI machine
        }},
        "postgres": {"main": {"dsn": sandbox.pg_dsn, "password": "${TEST_PG_PASSWORD}", "connect_timeout_s": 2,
                              "statement_timeout_ms": 2000}},
        "redis": {"cache": {"url": sandbox.redis_url, "password": "${TEST_REDIS_PASSWORD}", "timeout_s": 2}},
    }
    environment.update(overrides)
    return environment


@pytest.fixture
def write_env(tmp_path):
    """Write an environment file; returns its path (the name is the file stem)."""

    def write(environment: dict, name: str = "under-test") -> Path:
        directory = tmp_path / "environments"
        directory.mkdir(exist_ok=True)
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **environment}, sort_keys=False))
        return path

    return write


RESULTS_VALIDATOR = jsonschema.Draft202012Validator(shipped_schema())


def read_results(path: Path) -> dict:
    """A results.json the suite made opsproof write, validated against the JSON Schema the package ships."""
    results = json.loads(path.read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
              for e in RESULTS_VALIDATOR.iter_errors(results)]
    assert not errors, f"{path} does not match results.schema.json: {errors[:5]}"
    return results


class ChecksRun:
    """The outcome of one in-process run of the project's checks/."""

    def __init__(self, result, reports_dir: Path):
        self.result = result
        self.ret = int(result.ret)
        self.run_dirs = sorted(p for p in reports_dir.glob("*/*") if p.is_dir())
        self.run_dir = self.run_dirs[-1] if self.run_dirs else None
        results_file = self.run_dir / "results.json" if self.run_dir else None
        self.results = read_results(results_file) if results_file and results_file.exists() else None

    def record(self, check: str, target: str | None = None) -> dict:
        for record in self.results["checks"]:
            if record["check"] == check and (target is None or record["target"] == target):
                return record
        raise KeyError(f"{check}[{target}] not in results: {[r['id'] for r in self.results['checks']]}")

    @property
    def output(self) -> str:
        return self.result.stdout.str() + self.result.stderr.str()


@pytest.fixture
def run_checks(pytester, tmp_path, sandbox, monkeypatch):
    """Run the real checks/ against an environment file, in-process, reports into tmp_path."""
    monkeypatch.setenv("TEST_PG_PASSWORD", sandbox.pg_password)
    monkeypatch.setenv("TEST_REDIS_PASSWORD", sandbox.redis_password)
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)

    def run(env_path: Path, *args: str) -> ChecksRun:
        reports_dir = tmp_path / "reports"
        result = pytester.runpytest_inprocess(
            "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(ROOT / "checks"),
            "--env", str(env_path), "--reports-dir", str(reports_dir), "-p", "no:randomly", *args,
        )
        return ChecksRun(result, reports_dir)

    return run
