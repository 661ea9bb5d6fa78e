"""The DR drill on a sandbox of its own: passes with measured RTO/RPO, fails clearly, leaves it recoverable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from opsproof import sandbox as sandbox_module
from opsproof.sandbox.postgres import ADMIN_USER, DATABASE
from opsproof.sandbox.processes import alive

STEPS = ["stop_api", "stop_database", "lose_cache", "restore_database", "start_cache", "start_api"]


@pytest.fixture
def own_sandbox():
    """A sandbox this test alone takes down; afterwards `down` must stop and remove everything it recorded."""
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-test-dr-"))
    box = sandbox_module.up(state_dir)
    yield box
    recorded = json.loads((state_dir / "state.json").read_text())["processes"]
    sandbox_module.down(state_dir)
    assert [name for name, p in recorded.items() if alive(p["pid"])] == []
    assert [path for p in recorded.values() for path in p.get("cleanup", []) if Path(path).exists()] == []
    assert not state_dir.exists()
    shutil.rmtree(state_dir, ignore_errors=True)


def scenario(box, **overrides) -> dict:
    return {"outage": {"sandbox_dir": box.state_dir, "steps": STEPS, "rto_s": 120, "rpo_s": 3600,
                       "verify": ["api_health", "api_data", "tables_restored", "invariants"],
                       "invariants": {"no_negative_balances": {"sql": "SELECT count(*) FROM wallets WHERE balance < 0",
                                                               "max": 0}},
                       **overrides}}


def drill_env(box, **overrides) -> dict:
    return {"tier": "sandbox", "http": {"api": {"url": box.api_url, "health": {"json": {"status": "healthy"}}}},
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


def test_drill_recovers_the_sandbox_with_measured_rto_and_rpo(own_sandbox, write_env, run_checks, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    newest_written_after_backup(own_sandbox, backups, 90)
    run = run_checks(write_env(drill_env(own_sandbox, backup_dir=str(backups))), "--suite", "dr",
                     "--allow-destructive")
    assert run.ret == 0, run.output
    drill = run.record("test_dr_drill_completes_every_step", "outage")["drill"]
    assert drill["outcome"] == "passed" and drill["failed_step"] is None and drill["cleanup_confirmed"] is True
    assert [s["name"] for s in drill["steps"]] == STEPS + [f"verify:{v}" for v in
                                                           ("api_health", "api_data", "tables_restored", "invariants")]
    assert drill["backup_id"] == "db_1.dump" and drill["backup_set"] == str(backups)
    assert 0 < drill["rto_achieved_s"] <= 120 and drill["rpo_achieved_s"] == 90.0  # the row written after the backup
    assert [(v["measure"], v["value"], v["verdict"]) for v in drill["verifications"]] == [
        (name, "ok", "ok") for name in ("api_health", "api_data", "tables_restored", "invariants")]
    assert "transactions 5026/5027" in drill["verifications"][2]["detail"]
    assert all(s["outcome"] == "passed" and s["detail"] for s in drill["steps"])
    assert drill["scenario"] == "outage" and drill["rollback"] == []
    assert drill["confirmed_by"].endswith(" (--allow-destructive)")
    rto = run.record("test_dr_recovery_time_is_within_rto", "outage")["measurements"][0]
    assert rto["measure"] == "rto_achieved_s" and rto["value"] == drill["rto_achieved_s"] and rto["limit"] == 120
    # the environment's targets answer again: the API on its old port, on top of the restored database
    assert run_checks(write_env(drill_env(own_sandbox)), "-m", "smoke").ret == 0
    # `sandbox up` finds it running (same API), and the replaced cluster's files are down's to remove
    assert sandbox_module.up(Path(own_sandbox.state_dir)).api_url == own_sandbox.api_url
    assert len(sandbox_module.load(Path(own_sandbox.state_dir)).processes["postgres"]["cleanup"]) == 2


def test_drill_on_a_corrupt_backup_stops_at_the_restore(own_sandbox, write_env, run_checks, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "latest.dump").write_bytes(b"PGDMP\x00 this is not a custom-format archive" * 10)
    run = run_checks(write_env(drill_env(own_sandbox, backup_dir=str(backups))), "--suite", "dr",
                     "--allow-destructive")
    assert run.ret == 1
    record = run.record("test_dr_drill_completes_every_step", "outage")
    drill = record["drill"]
    assert drill["outcome"] == "failed" and drill["failed_step"] == "restore_database"
    assert drill["error"].startswith("pg_restore of latest.dump failed: pg_restore: error:")
    assert drill["steps"][-1]["output_tail"].startswith("pg_restore: error:")  # what pg_restore printed
    assert record["message"] == f"stopped_at ('restore_database: {drill['error']}') == None on dr.outage"
    assert run.record("test_dr_recovery_time_is_within_rto", "outage")["message"] == \
        "rto_achieved_s (None) <= 120 on dr.outage"


def test_drill_with_an_api_that_never_becomes_healthy_fails_at_verification(own_sandbox, write_env, run_checks):
    steps = [s for s in STEPS if s != "start_cache"]  # the cache stays lost: /health reports it down
    run = run_checks(write_env(drill_env(own_sandbox, steps=steps, healthy_within_s=2)), "--suite", "dr",
                     "--allow-destructive")
    assert run.ret == 1
    drill = run.record("test_dr_drill_completes_every_step", "outage")["drill"]
    assert drill["failed_step"] == "verify:api_health"
    assert drill["error"].startswith("the API did not become healthy within 2 s: /health answered 503 ")
    assert '"cache": "down"' in drill["error"]
    assert drill["verifications"] == [{"measure": "api_health", "value": drill["error"], "op": "==", "limit": "ok",
                                       "verdict": "crit"}]
    assert drill["steps"][-1]["outcome"] == "failed" and drill["steps"][-1]["error"] == drill["error"]


@pytest.mark.parametrize("tier, args, exit_code, outcome, reason", [
    ("sandbox", (), 0, "skipped", "destructive check: needs --allow-destructive and a scratch target"),
    ("production", ("--allow-destructive",), 1, "error",
     "DestructiveRefused: test_dr_drill_completes_every_step[outage] is destructive: refused in environment "
     "under-test (tier production)"),
])
def test_drill_is_refused_without_the_flag_and_on_production(write_env, run_checks, tmp_path, tier, args, exit_code,
                                                              outcome, reason):
    env = {"tier": tier, "dr": {"outage": {"sandbox_dir": str(tmp_path), "steps": ["stop_api"], "rto_s": 1,
                                           "rpo_s": 1}}}
    run = run_checks(write_env(env), "--suite", "dr", *args)
    assert run.ret == exit_code
    record = run.record("test_dr_drill_completes_every_step")
    assert (record["outcome"], record["message"]) == (outcome, reason)
