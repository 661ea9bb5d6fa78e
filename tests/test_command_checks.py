"""Command checks for real, on this machine and over ssh to the throwaway sshd: a pass, a wrong exit code, a
JSON field with the wrong value, a number over crit, a command that hangs (stopped at its timeout, its
children with it), a canary secret printed and redacted from every artifact, and production's read_only rule."""

from __future__ import annotations

import subprocess
import time

import pytest
import testinfra  # noqa: F401 - loaded once, kept across in-process runs
import yaml
from ssh_server import sshd  # noqa: F401 - the module-scoped sshd fixture

from conftest import ROOT, ChecksRun

CHECK = "test_command_output_as_expected"
CANARY = "canary-cmd-token-7f3e19"
HANG = 987.25  # an unusual sleep, to find its process afterwards

COMMANDS = [
    {"name": "queue", "run": """printf '{"status": "ok", "queue": {"pending": 3}}\\n'""",
     "json": {"status": "ok"}, "number": {"json": "queue.pending", "measure": "pending", "warn": 10, "crit": 20},
     "stdout": '"status"', "duration_s": {"warn": 20, "crit": 30}},
    {"name": "migrate", "run": "echo 'Migration table not found.' >&2; exit 3"},
    {"name": "horizon", "run": """echo '{"status": "paused", "workers": [{"state": "running"}]}'""",
     "json": {"status": "running", "workers.0.state": "running"}},
    {"name": "backlog", "run": "echo 'pending jobs: 5400'", "number": {"regex": r"pending jobs: (\d+)",
                                                                          "measure": "pending", "warn": 1000,
                                                                          "crit": 5000}},
    {"name": "hangs", "run": f"sleep {HANG} & sleep {HANG}", "timeout": "1s"},
    {"name": "canary", "run": 'echo "token=$API_TOKEN"; echo "stderr $API_TOKEN" >&2', "stdout": "token=",
     "env": {"API_TOKEN": "${CANARY_TOKEN}"}},
]


@pytest.fixture
def run_commands(pytester, tmp_path, monkeypatch):
    """Run checks/test_commands.py against one host target; no sandbox needed."""
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)
    monkeypatch.setenv("CANARY_TOKEN", CANARY)

    def run(host: dict, tier: str = "staging") -> ChecksRun:
        env_path = tmp_path / "environments" / "cmds.yaml"
        env_path.parent.mkdir(exist_ok=True)
        env_path.write_text(yaml.safe_dump({"name": "cmds", "tier": tier, "host": {"box": host}}))
        result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                              str(ROOT / "checks" / "test_commands.py"), "--env", str(env_path),
                                              "--reports-dir", str(tmp_path / "reports"), "-p", "no:randomly")
        return ChecksRun(result, tmp_path / "reports")

    return run


def by_command(run: ChecksRun) -> dict[str, dict]:
    return {r["id"].split(":")[-1].rstrip("]"): r for r in run.results["checks"] if r["check"] == CHECK}


def _hanging_left() -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"sleep {HANG}"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def _judged(run: ChecksRun) -> None:
    """What every host gives: each command judged as the runbook would read it."""
    seen = by_command(run)
    assert run.ret == 1
    assert {name: r["outcome"] for name, r in seen.items()} == {
        "queue": "passed", "migrate": "failed", "horizon": "failed", "backlog": "failed", "hangs": "failed",
        "canary": "passed"}
    assert {"measure": "queue pending", "value": 3.0, "op": "<=", "warn": 10.0, "crit": 20.0, "verdict": "ok"} in \
        seen["queue"]["measurements"]
    assert seen["migrate"]["message"] == "migrate exit_code (3) == 0 on host.box: Migration table not found."
    assert seen["horizon"]["message"] == "horizon status ('paused') == 'running' on host.box"
    assert seen["backlog"]["message"] == "backlog pending (5400.0) <= 5000 on host.box (crit)"
    assert seen["hangs"]["message"] == "hangs exit_code ('none: stopped at its timeout of 1 s') == 0 on host.box"
    # evidence names a command, never its text
    text = repr(run.results)
    assert "printf" not in text and "pending jobs: (" not in repr([r["message"] for r in seen.values()])


def test_commands_on_this_machine(run_commands):
    started = time.monotonic()
    run = run_commands({"host": "local://", "timeout_s": 5, "commands": COMMANDS})
    took = time.monotonic() - started
    _judged(run)
    assert took < 20, took  # the hanging command costs its 1 s timeout (+2 s grace at most), not its sleep
    assert _hanging_left() == []  # its whole process group went


def test_commands_over_ssh(run_commands, sshd):
    run = run_commands({**sshd, "timeout_s": 5, "commands": COMMANDS})
    _judged(run)
    deadline = time.monotonic() + 5  # the host's timeout -k takes its second
    while _hanging_left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _hanging_left() == []


def test_canary_secret_redacted_from_every_artifact(run_commands, tmp_path):
    run = run_commands({"host": "local://", "commands": [c for c in COMMANDS if c["name"] == "canary"]})
    assert run.ret == 0, run.output
    tail = next(m for m in by_command(run)["canary"]["measurements"] if m["measure"] == "canary output_tail")
    assert tail["value"].startswith("token=***\n") and "stderr ***" in tail["value"]
    leaks = [str(p) for p in (tmp_path / "reports").rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == [] and CANARY not in run.output
    assert any((tmp_path / "reports").rglob("results.json"))


def test_production_command_without_read_only_exits_4(run_commands, tmp_path):
    run = run_commands({"host": "local://", "commands": [{"name": "horizon", "run": "php artisan horizon:status"}]},
                       tier="production")
    assert run.ret == 4
    assert ("cmds.yaml: host.box.commands.horizon: a command on tier production must declare read_only: true"
            in run.output), run.output
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("*.json"))
    declared = {"name": "horizon", "run": "echo running", "read_only": True, "stdout": "running"}
    assert run_commands({"host": "local://", "commands": [declared]}, tier="production").ret == 0


def test_command_that_judges_nothing_is_rejected_at_load(run_commands):
    run = run_commands({"host": "local://", "commands": [{"name": "x", "run": "true", "exit_code": None}]})
    assert run.ret == 4
    assert "judges nothing" in run.output
