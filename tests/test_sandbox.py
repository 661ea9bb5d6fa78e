"""The sandbox starts real servers, records them, and stops exactly those."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from opsproof.cli import main
from opsproof.processes import identity
from opsproof.sandbox import down, load
from opsproof.sandbox.processes import alive


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("Uid:")).split()[1])


def test_sandbox_serves_seeded_data_behind_passwords(sandbox):
    with psycopg.connect(sandbox.pg_dsn, password=sandbox.pg_password, connect_timeout=5) as conn:
        failed_24h = conn.execute(
            "SELECT count(*) FROM transactions WHERE status='failed' AND created_at > now() - interval '24 hours'"
        ).fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert failed_24h == 6
    assert {"users", "transactions", "compliance_alerts", "settlements", "reconciliation_logs"} <= tables
    client = redis.Redis.from_url(sandbox.redis_url, password=sandbox.redis_password, socket_timeout=5)
    assert client.llen("queues:default") == 12
    health = httpx.get(f"{sandbox.api_url}/health", timeout=5).json()
    assert health == {"status": "healthy", "version": "1.4.2",
                      "services": {"database": "connected", "cache": "connected"}}
    assert "http_requests_total" in httpx.get(f"{sandbox.api_url}/metrics", timeout=5).text


def test_postgres_runs_unprivileged_even_as_root(sandbox):
    assert uid_of(sandbox.pg_pid) != 0


@pytest.fixture
def box_dir(tmp_path):
    """A state dir for a sandbox of the test's own, brought down even when an assertion fails."""
    state_dir = tmp_path / "box"
    yield state_dir
    down(state_dir)


def test_up_status_down_stop_exactly_what_was_started(box_dir, capsys):
    state_dir = box_dir
    assert main(["sandbox", "up", "--state-dir", str(state_dir)]) == 0
    started = load(state_dir)
    pids = started.pids()
    assert all(alive(pid) for pid in pids.values())
    vars_file = state_dir / "vars.env"
    assert stat.S_IMODE(os.stat(vars_file).st_mode) == 0o600
    assert f"SANDBOX_PG_PASSWORD={started.pg_password}" in vars_file.read_text()
    assert main(["sandbox", "status", "--state-dir", str(state_dir)]) == 0
    assert capsys.readouterr().out.count("running pid") == 5  # postgres, redis, mariadb, api, https
    assert main(["sandbox", "down", "--state-dir", str(state_dir)]) == 0
    assert not any(alive(pid) for pid in pids.values())
    assert not state_dir.exists() and not os.path.exists(started.pg_data_dir)
    assert main(["sandbox", "down", "--state-dir", str(state_dir)]) == 0
    assert "nothing (was not running)" in capsys.readouterr().out
    assert main(["sandbox", "status", "--state-dir", str(state_dir)]) == 1


def test_sandbox_backup_adds_a_round_and_keeps_the_newest(sandbox, monkeypatch, capsys):
    """`opsproof sandbox backup` is the sandbox's nightly job: a new round, older ones pruned, one manifest."""
    from opsproof.sandbox import backups

    monkeypatch.setattr(backups, "KEPT_ROUNDS", 2)
    monkeypatch.setattr(backups, "KEPT_BASE_BACKUPS", 1)
    directory = Path(sandbox.variables["SANDBOX_BACKUP_DIR"])
    before = backups.rounds(directory)
    assert main(["sandbox", "backup", "--state-dir", sandbox.state_dir]) == 0
    assert main(["sandbox", "backup", "--state-dir", sandbox.state_dir]) == 0
    kept = backups.rounds(directory)
    assert len(kept) == 2 and kept[0] > before[-1] and f"round {kept[-1]} written" in capsys.readouterr().out
    assert sorted(p.name for p in directory.glob("base-*")) == [f"base-{kept[-1]}", f"base-{kept[-1]}.counts.json"]
    assert (directory / f"base-{kept[-1]}" / "backup_manifest").is_file()
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.endswith((".counts.json", "SUMS")))
    assert {p.name.rsplit("-", 1)[-1].split(".")[0] for p in files} == set(kept)
    manifest = (directory / "SHA256SUMS").read_text().splitlines()
    assert manifest == [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in files]


def test_sandbox_backup_needs_a_running_sandbox(tmp_path, capsys):
    assert main(["sandbox", "backup", "--state-dir", str(tmp_path / "none")]) == 4
    assert capsys.readouterr().err == (
        "opsproof: sandbox: the sandbox is not running: start it with `opsproof sandbox up`\n")


@pytest.fixture
def strangers():
    """Two processes that belong to no sandbox; killed afterwards if anything left them running."""
    started = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_down_leaves_alone_the_processes_it_did_not_start_and_says_so(tmp_path, strangers, capsys):
    """A state file naming unrelated pids signals none of them: one recorded with another start time (its
    pid since reused), one from an older opsproof that recorded no identities (a command line that is
    not the component's)."""
    reused, unrecorded = strangers
    recorded = identity(reused.pid)
    state_dir = tmp_path / "box"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps({"state_dir": str(state_dir), "processes": {
        "redis": {"pid": reused.pid, "port": 6399,
                  "identity": {**recorded, "start_ticks": recorded["start_ticks"] - 1}},
        "api": {"pid": unrecorded.pid, "port": 8099},
    }, "variables": {}, "details": {}}))
    assert main(["sandbox", "status", "--state-dir", str(state_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        (f"redis     stopped pid {reused.pid} on 127.0.0.1:6399 (not the sandbox's: it runs `sleep 300` and started "
         "at another time than the process the sandbox recorded (the pid was reused))"),
        (f"api       stopped pid {unrecorded.pid} on 127.0.0.1:8099 (not the sandbox's: it runs `sleep 300`, not the "
         "sandbox's api on port 8099 (the state file is from an older opsproof and records no process identity))")]
    assert main(["sandbox", "down", "--state-dir", str(state_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "sandbox down: stopped nothing (was not running)",
        (f"sandbox down: left alone api (pid {unrecorded.pid}): it runs `sleep 300`, not the sandbox's api on port "
         "8099 (the state file is from an older opsproof and records no process identity)"),
        (f"sandbox down: left alone redis (pid {reused.pid}): it runs `sleep 300` and started at another time than "
         "the process the sandbox recorded (the pid was reused)")]
    assert reused.poll() is None and unrecorded.poll() is None
    assert not state_dir.exists()


@pytest.mark.parametrize("recorded", ["with identities", "older state without identities"])
def test_down_stops_the_processes_it_started(tmp_path, recorded, capsys):
    """Each started process is recorded with its identity; a state file from before identities still
    stops the sandbox's own servers, recognised by their command line and port."""
    from opsproof.sandbox import Sandbox, api
    from opsproof.sandbox import redis as sandbox_redis

    state_dir = tmp_path / "box"
    state_dir.mkdir()
    box = Sandbox(state_dir=str(state_dir), variables={  # an API without a database: it starts all the same
        "SANDBOX_PG_DSN": "postgresql://nobody@127.0.0.1:9/none", "SANDBOX_PG_PASSWORD": "unused"})
    try:
        sandbox_redis.component(box)
        api.component(box)
    except BaseException:
        down(state_dir)
        raise
    state = json.loads((state_dir / "state.json").read_text())
    assert {name: p["identity"] for name, p in state["processes"].items()} == {
        name: identity(p["pid"]) for name, p in box.processes.items()}
    if recorded == "older state without identities":
        for process in state["processes"].values():
            del process["identity"]
        (state_dir / "state.json").write_text(json.dumps(state))
    assert main(["sandbox", "down", "--state-dir", str(state_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"sandbox down: stopped api (pid {box.pids()['api']}), redis (pid {box.pids()['redis']})"]
    assert not any(alive(pid) for pid in box.pids().values())
