"""DR drills on a sandbox of this module's own: the sandbox-outage preset built from `sandbox` steps, and
PR-023's Runbook 12 (full system recovery) as its example ships; measured RTO/RPO, clear failures, a
rollback that leaves the sandbox recoverable, and `sandbox down` removing whatever the drills made."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from opsproof import sandbox as sandbox_module
from opsproof.sandbox.postgres import ADMIN_USER, DATABASE
from opsproof.sandbox.processes import alive, running

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["stop_api", "stop_database", "lose_cache", "restore_database", "start_cache", "start_api", "api_healthy"]
TARGETS = {"stop_api": "http.api", "start_api": "http.api", "lose_cache": "redis.cache", "start_cache": "redis.cache"}


@pytest.fixture(scope="module")
def own_sandbox():
    """A sandbox these tests alone take down; afterwards `down` must stop and remove everything it recorded."""
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-test-dr-"))
    box = sandbox_module.up(state_dir)
    yield box
    recorded = json.loads((state_dir / "state.json").read_text())["processes"]
    sandbox_module.down(state_dir)
    assert [name for name, p in recorded.items() if alive(p["pid"])] == []
    assert [path for p in recorded.values() for path in p.get("cleanup", []) if Path(path).exists()] == []
    assert not state_dir.exists()


@pytest.fixture
def box(own_sandbox, monkeypatch):
    """The module's sandbox, up and healthy (every drill below leaves it so); its passwords for the files."""
    current = sandbox_module.load(Path(own_sandbox.state_dir))
    assert current.is_up(), "a drill before this test left the sandbox down"
    monkeypatch.setenv("DR_PG_PASSWORD", current.pg_password)
    monkeypatch.setenv("DR_REDIS_PASSWORD", current.redis_password)
    return current


def sandbox_step(action: str, timeout: str = "1m", **extra) -> dict:
    return {"name": action, "type": "sandbox", "action": action, "target": TARGETS.get(action, "postgres.main"),
            "timeout": timeout, **extra}


def scenario(box, **overrides) -> dict:
    return {"outage": {
        "sandbox_dir": box.state_dir, "acts_on": ["http.api", "postgres.main", "redis.cache"],
        "steps": [*(sandbox_step(a) for a in STEPS[:-1]),
                  {"name": "api_healthy", "type": "wait_healthy", "targets": ["http.api"], "timeout": "30s",
                   "every": "0.2s"}],
        "verify": {"invariants": {
            "no_negative_balances": {"target": "postgres.main", "sql": "SELECT count(*) FROM wallets WHERE balance < 0",
                                     "max": 0},
            "transactions": {"target": "postgres.main", "sql": "SELECT count(*) FROM transactions", "min": 5000}}},
        "rto": "2m", "rpo": "1h",
        "rpo_measure": {"timestamp": {"sql": "SELECT max(created_at) FROM transactions", "source": "postgres.main",
                                      "recovered": "postgres.main"}},
        **overrides}}


def drill_env(box, **overrides) -> dict:
    return {"tier": "sandbox",
            "http": {"api": {"url": box.api_url, "health": {"json": {"status": "healthy"}}}},
            "postgres": {"main": {"dsn": box.pg_dsn, "password": "${DR_PG_PASSWORD}"}},
            "redis": {"cache": {"url": box.redis_url, "password": "${DR_REDIS_PASSWORD}"}},
            "dr": scenario(box, **overrides)}


def newest_written_after_backup(box, backups: Path, seconds_later: int) -> None:
    """Take the backup, then write a transaction ``seconds_later`` than the newest: that is what the drill loses."""
    env = {**os.environ, "PGPASSWORD": box.pg_admin_password}
    subprocess.run(["pg_dump", "-Fc", "-f", str(backups / "db_1.dump"), "-h", "127.0.0.1", "-p", str(box.pg_port),
                    "-U", ADMIN_USER, "-d", DATABASE], env=env, check=True, timeout=60)
    with psycopg.connect(host="127.0.0.1", port=box.pg_port, user=ADMIN_USER, password=box.pg_admin_password,
                         dbname=DATABASE, autocommit=True) as conn:
        conn.execute("INSERT INTO transactions (wallet_id, amount, status, created_at) SELECT 1, 1.00, 'completed', "
                     "max(created_at) + make_interval(secs => %s) FROM transactions", (seconds_later,))


def drill_of(run, scenario_name: str = "outage") -> dict:
    return run.record("test_dr_drill_completes_every_step", scenario_name)["drill"]


def test_preset_recovers_the_sandbox_with_measured_rto_and_rpo(box, write_env, run_checks, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    newest_written_after_backup(box, backups, 90)
    restore = sandbox_step("restore_database", "5m", backup_dir=str(backups))
    env = drill_env(box)
    env["dr"]["outage"]["steps"][3] = restore
    run = run_checks(write_env(env), "--suite", "dr", "--allow-destructive", "--confirm-drill", "outage")
    assert run.ret == 0, run.output
    drill = drill_of(run)
    assert drill["outcome"] == "passed" and drill["failed_step"] is None and drill["cleanup_confirmed"] is True
    assert [s["name"] for s in drill["steps"]] == ["measure_rpo_before", *STEPS, "verify", "measure_rpo_after"]
    assert [s["target"] for s in drill["steps"][1:5]] == ["http.api", "postgres.main", "redis.cache", "postgres.main"]
    assert drill["steps"][4]["detail"].endswith("db_1.dump restored")
    assert 0 < drill["rto_achieved_s"] <= 120 and drill["rpo_achieved_s"] == 90.0  # the row written after the backup
    assert [(v["measure"], v["verdict"]) for v in drill["verifications"]] == [
        ("invariant.no_negative_balances", "ok"), ("invariant.transactions", "ok"), ("rto_achieved_s", "ok"),
        ("rpo_achieved_s", "ok")]
    assert all(s["outcome"] == "passed" and s["detail"] for s in drill["steps"])
    assert drill["scenario"] == "outage" and drill["rollback"] == []
    assert drill["confirmed_by"].endswith(" (--allow-destructive --confirm-drill outage)")
    rto = run.record("test_dr_recovery_time_is_within_rto", "outage")["measurements"][0]
    assert rto["measure"] == "rto_achieved_s" and rto["value"] == drill["rto_achieved_s"] and rto["limit"] == 120
    # the environment's targets answer again: the API on its old port, on top of the restored database
    assert run_checks(write_env(drill_env(box)), "-m", "smoke").ret == 0
    # `sandbox up` finds it running (same API), and the replaced cluster's files are down's to remove
    assert sandbox_module.up(Path(box.state_dir)).api_url == box.api_url
    assert len(sandbox_module.load(Path(box.state_dir)).processes["postgres"]["cleanup"]) >= 2


def test_pr023_runbook_12_example_recovers_the_whole_system_within_its_rto(box, tmp_path, run_checks):
    """environments/examples/pr023-full-recovery.yaml as shipped: a fresh cluster, the latest nightly dump
    restored into it by the restore step, cache and API back, health and table counts verified."""
    example = (ROOT / "environments" / "examples" / "pr023-full-recovery.yaml").read_text()
    env = tmp_path / "environments" / "pr023-full-recovery.yaml"
    env.parent.mkdir()
    env.write_text(example.replace("../../.opsproof/sandbox/vars.env", str(Path(box.state_dir) / "vars.env")))
    run = run_checks(env, "--suite", "dr", "--allow-destructive", "--confirm-drill", "full-system-recovery")
    assert run.ret == 0, run.output
    record = drill_of(run, "full-system-recovery")
    assert [(s["name"], s["kind"]) for s in record["steps"]] == [
        ("measure_rpo_before", "measure"), ("stop_api", "sandbox"), ("stop_database", "sandbox"),
        ("stop_cache", "sandbox"), ("check_backup", "run"), ("fresh_database", "sandbox"),
        ("restore_database", "restore"), ("start_cache", "sandbox"), ("start_api", "sandbox"),
        ("health_checks", "wait_healthy"), ("verify", "verify"), ("measure_rpo_after", "measure")]
    restore = record["steps"][6]
    assert restore["target"] == "postgres.recovery" and restore["detail"].startswith("backups.nightly bankchain-")
    assert record["steps"][4]["output_tail"].endswith(record["backup_id"])  # check_backup printed what it tested
    assert record["backup_set"] == "nightly" and record["backup_id"].endswith(".sql.gz")
    assert record["outcome"] == "passed" and 0 < record["rto_achieved_s"] <= 45 * 60
    counts = {v["measure"]: v["value"] for v in record["verifications"] if v["measure"].startswith("invariant.")}
    assert counts["invariant.users"] == 500 and counts["invariant.reconciliation_logs"] == 2000
    assert counts["invariant.transactions"] >= 5000
    assert next(v for v in record["verifications"] if v["measure"] == "failed_checks")["value"] == {}
    state = sandbox_module.load(Path(box.state_dir))
    assert running("postgres", state.processes["postgres"]) and running("api", state.processes["api"])


RECOVER = [sandbox_step("stop_database"), sandbox_step("restore_database", "5m"), sandbox_step("start_cache"),
           sandbox_step("start_api")]


def test_drill_on_a_corrupt_backup_stops_at_the_restore_and_rolls_back(box, write_env, run_checks, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "latest.dump").write_bytes(b"PGDMP\x00 this is not a custom-format archive" * 10)
    env = drill_env(box, rollback=[{**step, "name": f"rollback_{step['name']}"} for step in RECOVER])
    env["dr"]["outage"]["steps"][3] = sandbox_step("restore_database", "5m", backup_dir=str(backups))
    run = run_checks(write_env(env), "--suite", "dr", "--allow-destructive", "--confirm-drill", "outage")
    assert run.ret == 1
    record = run.record("test_dr_drill_completes_every_step", "outage")
    drill = record["drill"]
    assert drill["outcome"] == "failed" and drill["failed_step"] == "restore_database"
    assert drill["error"].startswith("pg_restore of latest.dump failed: pg_restore: error:")
    assert drill["steps"][-1]["output_tail"].startswith("pg_restore: error:")  # what pg_restore printed
    assert record["message"] == f"stopped_at ('restore_database: {drill['error']}') == None on dr.outage"
    assert run.record("test_dr_recovery_time_is_within_rto", "outage")["message"] == \
        "rto_achieved_s (None) <= 120 on dr.outage"
    assert run.record("test_dr_recovered_systems_pass_verification", "outage")["outcome"] == "skipped"
    # the rollback brought the sandbox back from its own latest backup
    assert [(s["name"], s["outcome"]) for s in drill["rollback"]] == [
        (f"rollback_{step['name']}", "passed") for step in RECOVER]
    assert run.record("test_dr_rollback_leaves_nothing_undone", "outage")["outcome"] == "passed"
    assert sandbox_module.load(Path(box.state_dir)).is_up()


def test_drill_whose_api_never_becomes_healthy_fails_within_the_wait_and_rolls_back(box, write_env, run_checks):
    steps = [s for s in scenario(box)["outage"]["steps"] if s["name"] != "start_cache"]  # /health: cache down
    steps[-1] = {**steps[-1], "timeout": "2s"}
    run = run_checks(write_env(drill_env(box, steps=steps, rollback=[{**sandbox_step("start_cache"),
                                                                      "name": "restart_cache"}])),
                     "--suite", "dr", "--allow-destructive", "--confirm-drill", "outage")
    assert run.ret == 1
    drill = drill_of(run)
    assert drill["failed_step"] == "api_healthy" and drill["rto_achieved_s"] is None
    assert drill["error"].startswith("not healthy within 2 s (") and drill["error"].endswith(
        "attempts): http.api: status_code (503) == 200")
    assert run.record("test_dr_recovery_time_is_within_rto", "outage")["message"] == \
        "rto_achieved_s (None) <= 120 on dr.outage"
    assert [(s["name"], s["outcome"]) for s in drill["rollback"]] == [("restart_cache", "passed")]
    assert sandbox_module.load(Path(box.state_dir)).is_up()


@pytest.mark.parametrize("args, outcome, reason", [
    ((), "skipped", "destructive check: needs --allow-destructive and a scratch target"),
    (("--allow-destructive",), "error",
     "DestructiveRefused: DR drill refused: scenario outage runs only with --confirm-drill outage (its own name) "
     "besides --allow-destructive"),
])
def test_drill_is_refused_without_the_flag_or_its_confirmation(write_env, run_checks, tmp_path, args, outcome, reason):
    env = {"tier": "sandbox", "tcp": {"port": {"host": "127.0.0.1", "port": 9}},
           "dr": {"outage": {"acts_on": ["tcp.port"], "rto": "1m", "verify": {"targets": ["tcp.port"]},
                             "steps": [{"name": "touch", "type": "run", "command": f"touch {tmp_path}/ran",
                                        "timeout": "5s"}]}}}
    run = run_checks(write_env(env), "--suite", "dr", *args)
    assert run.ret == (1 if args else 0)
    record = run.record("test_dr_drill_completes_every_step")
    assert (record["outcome"], record["message"]) == (outcome, reason)
    assert not (tmp_path / "ran").exists()
