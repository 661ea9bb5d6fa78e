"""The readiness report: composed from history, says what is missing, flags tampering, opens in Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from conftest import read_results
from opsproof import history
from opsproof.environment.loader import environment_settings
from opsproof.readiness import compose, render

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def drill(kind: str, finished: datetime, outcome: str = "passed") -> dict:
    return {"kind": kind, "backup_set": "nightly", "backup_id": "db_1.dump", "backup_time": finished.isoformat(),
            "target": "scratch", "started_at": finished.isoformat(), "finished_at": finished.isoformat(),
            "rto_target_s": 600, "rto_achieved_s": 42.5, "rpo_target_s": 86400, "rpo_achieved_s": 3600.0,
            "verifications": [{"name": "rows.users", "value": 500, "op": ">=", "limit": 500, "verdict": "ok"}],
            "cleanup_confirmed": True, "outcome": outcome}  # as results.json had it before schema_version 2


def add_run(reports: Path, when: datetime, suite: str, checks: list[dict], **top) -> None:
    run_dir = reports / "unit" / f"{when:%Y%m%dT%H%M%SZ}-{suite}"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({
        "environment": {"name": "unit", "tier": "staging"}, "suite": suite, "started_at": when.isoformat(),
        "finished_at": (when + timedelta(seconds=30)).isoformat(), "exit_code": 0, "verdict": "PASS (gate p1)",
        "checks": checks, **top}))
    path = reports / "unit" / "history.jsonl"
    history.append(path, history.record_for_run(run_dir, path, ROOT))


def check(name: str, outcome: str = "passed", **extra) -> dict:
    return {"id": f"checks/test_x.py::{name}[main]", "outcome": outcome, "severity": "p1", "where": "postgres.main",
            "message": "", "measurements": [{"measure": "connections_pct", "value": 12.5, "op": "<=", "warn": 80,
                                             "crit": 95, "verdict": "ok"}], **extra}


@pytest.fixture
def project(tmp_path):
    env_file = tmp_path / "unit.yaml"
    env_file.write_text("tier: staging\ndescription: payments staging\n")
    (tmp_path / "unit.waivers.yaml").write_text(yaml.safe_dump({"waivers": [
        {"check": "*test_dr_*", "justification": "DR site being rebuilt", "approver": "A. Approver",
         "ticket": "OPS-7", "created": "2026-11-01", "expires": "2026-12-31"},
        {"check": "*test_old*", "justification": "old", "approver": "B", "ticket": "OPS-1",
         "created": "2026-01-01", "expires": "2026-02-01"}]}))
    reports = tmp_path / "reports"
    add_run(reports, NOW - timedelta(days=40), "backup", [check("test_restore_drill", drill=drill("restore",
                                                                                                 NOW - timedelta(days=40)))])
    for days in (3, 2, 1):
        add_run(reports, NOW - timedelta(days=days), "smoke", [check("test_connections"),
                                                               check("test_queue", "failed" if days == 1 else "passed")])
    return env_file, reports / "unit" / "history.jsonl"


def doc_for(project, **kwargs) -> dict:
    env_file, path = project
    return compose(environment_settings(env_file), env_file, path, now=NOW, **kwargs)


def test_document_states_what_is_missing_and_the_latest_values(project):
    doc = doc_for(project)
    assert doc["history"]["ok"] and doc["history"]["records"] == 4
    assert doc["environment"] == {"name": "unit", "tier": "staging", "description": "payments staging",
                                  "file": str(project[0])}
    assert doc["missing"] == ["no restore drill in the last 31 days", "no DR drill on record",
                              "no nightly run in the period", "no dr run in the period"]
    (smoke,) = [s for s in doc["suites"] if s["suite"] == "smoke"]
    assert [(t["passed"], t["failed"]) for t in smoke["trend"]] == [(2, 0), (2, 0), (1, 1)]
    queue = next(c for c in doc["checks"] if "test_queue" in c["id"])
    assert queue["outcome"] == "failed" and queue["measurements"] == ["connections_pct (12.5) <= warn 80 / crit 95"]
    assert doc["drills"]["restore"]["rto_achieved_s"] == 42.5 and doc["drills"]["dr"] is None
    assert [w["ticket"] for w in doc["waivers"]["open"]] == ["OPS-7"]
    assert [w["ticket"] for w in doc["waivers"]["expired"]] == ["OPS-1"]
    assert [w["ticket"] for w in doc["waivers"]["stale"]] == ["OPS-7"]
    a12 = next(c for c in doc["controls"] if c["control"] == "Art. 12")
    assert a12["status"] == "evidenced" and a12["fresh_drills"] == ["restore"]
    assert next(c for c in doc["controls"] if c["control"] == "12.10.2")["status"] == "no evidence"
    assert {a["status"] for run in doc["runs"] for a in run["artifacts"]} == {"verified"}
    assert all(len(a["sha256"]) == 64 for run in doc["runs"] for a in run["artifacts"])


def test_since_narrows_the_period(project):
    doc = doc_for(project, since=(NOW - timedelta(days=2)).date())
    assert [len(s["trend"]) for s in doc["suites"]] == [2]
    assert "no backup run in the period" in doc["missing"]


def test_tampered_history_is_stated_first_in_every_format(project):
    path = project[1]
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    doc = doc_for(project)
    assert doc["history"]["problems"][0] == "line 2: record(s) removed before it (seq 3, expected 2)"
    html = render(doc, "html")
    assert html.index("HISTORY VERIFICATION FAILED") < html.index("What is missing")
    assert "line 2: record(s) removed before it" in html
    assert render(doc, "md").splitlines()[4].startswith("**HISTORY VERIFICATION FAILED**")
    assert json.loads(render(doc, "json"))["history"]["ok"] is False


def test_tampered_artifact_shows_as_mismatch(project):
    path = project[1]
    target = next(path.parent.glob("*-backup/results.json"))
    target.write_text(target.read_text().replace('"rto_achieved_s": 42.5', '"rto_achieved_s": 4.5'))
    doc = doc_for(project)
    assert not doc["history"]["ok"]
    assert "MISMATCH" in {a["status"] for run in doc["runs"] for a in run["artifacts"]}


def test_cli_writes_each_format_and_exits_1_on_tampering(project, tmp_path):
    env_file, path = project
    for fmt in ("html", "md", "json"):
        output = tmp_path / f"out.{fmt}"
        result = subprocess.run([sys.executable, "-m", "opsproof.cli", "readiness", "--env", str(env_file),
                                 "--reports-dir", str(tmp_path / "reports"), "--format", fmt, "--output", str(output),
                                 "--since", "2026-01-01"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "missing: no DR drill on record" in result.stdout and output.stat().st_size > 1000
    assert "| SOC 2 | A1.3 |" in (tmp_path / "out.md").read_text()
    path.write_text(path.read_text().replace('"suite": "smoke"', '"suite": "nightly"', 1))
    tampered = subprocess.run([sys.executable, "-m", "opsproof.cli", "readiness", "--env", str(env_file),
                               "--reports-dir", str(tmp_path / "reports"), "--output", str(tmp_path / "t.html")],
                              capture_output=True, text=True, timeout=60)
    assert tampered.returncode == 1
    assert "history verification FAILED: line 2: record edited" in tampered.stdout
    assert "HISTORY VERIFICATION FAILED" in (tmp_path / "t.html").read_text()


CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--enable-logging=stderr", "--v=0"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run(["chromium", *CHROMIUM, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=90)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_report_after_the_demo_opens_in_chromium_without_script_errors(tmp_path):
    """`opsproof demo` on a sandbox of its own, then the report it composed, rendered by headless Chromium."""
    envs = tmp_path / "environments"
    envs.mkdir()
    state = tmp_path / "sandbox"
    local = (ROOT / "environments" / "local.yaml").read_text()
    (envs / "local.yaml").write_text(local.replace("../.opsproof/sandbox/vars.env", str(state / "vars.env")))
    shutil.copy(ROOT / "environments" / "local.waivers.yaml", envs / "local.waivers.yaml")
    env = {**os.environ, "OPSPROOF_SANDBOX_DIR": str(state), "OPSPROOF_OPERATOR": "demo-test"}
    demo = subprocess.run([sys.executable, "-m", "opsproof.cli", "demo", "--env", str(envs / "local.yaml"),
                           "--reports-dir", str(tmp_path / "reports")], capture_output=True, text=True, timeout=240,
                          env=env, cwd=ROOT)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert not state.exists()  # the demo stopped its sandbox, drill-made cluster included
    (report,) = (tmp_path / "reports" / "local").glob("readiness-*.html")
    written = {p: read_results(p) for p in (tmp_path / "reports" / "local").glob("*/results.json")}
    assert len(written) == 4  # one per suite, each valid against the schema the package ships
    drill = next(c["drill"] for p, results in written.items() if p.parent.name.endswith("-dr")
                 for c in results["checks"] if c.get("drill"))

    shot = tmp_path / "readiness.png"
    screenshot = chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", screenshot.stderr[-2000:]
    dom = chromium(tmp_path, "--dump-dom", report.as_uri())
    console = [line for line in (screenshot.stderr + dom.stderr).splitlines() if ":CONSOLE" in line]
    assert console == []
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom.stdout))
    assert "History verified: 4 records" in text
    assert f"RTO target 120.0 s, achieved {drill['rto_achieved_s']:.1f} s" in text
    assert f"RPO target 86400.0 s, achieved {drill['rpo_achieved_s']:.1f} s" in text
    assert ("open checks/test_http.py::test_health_responds_within* sandbox API shares 2 cores with the test suite; "
            "response time is noisy under load Demo Approver (SRE lead) OPS-101 2026-11-01 2027-11-01") in text
    assert "What is missing" in text and "demo-test" in text


def test_failed_drill_of_one_backup_set_is_not_hidden_by_a_passed_one_in_the_same_run(project):
    env_file, path = project
    when = NOW - timedelta(days=1)
    failed = {**drill("restore", when, "failed"), "backup_set": "ledger"}
    add_run(path.parent.parent, when, "backup", [check("test_restores[nightly]", drill=drill("restore", when)),
                                                 check("test_restores[ledger]", "failed", drill=failed)])
    doc = doc_for(project)
    assert doc["drills"]["restore"]["backup_set"] == "ledger"
    assert "the latest restore drill did not pass (failed)" in doc["missing"]


def test_history_line_without_a_start_time_is_reported_not_a_crash(project, capsys):
    from opsproof.cli import main

    env_file, path = project
    lines = path.read_text().splitlines()
    record = json.loads(lines[-1])
    del record["started_at"]
    path.write_text("\n".join(lines[:-1] + [json.dumps(record)]) + "\n")
    assert main(["readiness", "--env", str(env_file), "--reports-dir", str(path.parent.parent),
                 "--output", str(path.parent / "r.md"), "--format", "md"]) == 1
    out = capsys.readouterr()
    assert "history verification FAILED" in out.out and "Traceback" not in out.err


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_drill_blocks_say_what_was_drilled_in_one_shape_also_from_older_results(project):
    """A restore drill shows its backup set (not "Scenario None"), a DR drill its scenario; version-1 records
    (DR verifications {name, ok, detail}, steps with ok) read as measurements and steps like new ones."""
    env_file, path = project
    when = NOW - timedelta(days=1)
    failure = "the API did not become healthy within 2 s: /health answered 503"
    dr_v1 = {"kind": "dr", "scenario": "outage", "started_at": when.isoformat(), "finished_at": when.isoformat(),
             "target": "fresh PostgreSQL cluster", "backup_set": "/var/backups", "backup_id": "db_1.dump",
             "backup_time": when.isoformat(), "outage_started_at": when.isoformat(), "newest_data_before": None,
             "rto_target_s": 120, "rto_achieved_s": None, "rpo_target_s": 3600, "rpo_achieved_s": None,
             "steps": [{"name": "stop_api", "started_at": when.isoformat(), "finished_at": when.isoformat(),
                        "duration_s": 0.2, "ok": True, "error": None},
                       {"name": "verify:api_health", "started_at": when.isoformat(), "finished_at": when.isoformat(),
                        "duration_s": 2.0, "ok": False, "error": failure}],
             "verifications": [{"name": "api_health", "ok": False, "detail": failure}],
             "failed_step": "verify:api_health", "error": failure, "cleanup_confirmed": True, "outcome": "failed"}
    add_run(path.parent.parent, when, "dr", [check("test_dr_drill_completes_every_step", "failed", drill=dr_v1)])
    restore_v2 = {**drill("restore", when), "verifications": [
        {"measure": "rows.users", "value": 480, "op": ">=", "limit": 500, "verdict": "crit"}], "outcome": "failed",
        "steps": [{"name": "verify", "duration_s": 0.4, "outcome": "failed", "detail": "failed: rows.users"}],
        "confirmed_by": "alice (--allow-destructive)"}
    add_run(path.parent.parent, when, "backup", [check("test_restores", "failed", drill=restore_v2)],
            schema_version=2)
    doc = doc_for(project)
    restore, dr = doc["drills"]["restore"], doc["drills"]["dr"]
    assert (restore["subject"], dr["subject"]) == ("backup set nightly", "scenario outage")
    assert dr["verifications"] == [{"measure": "api_health", "value": failure, "op": "==", "limit": "ok",
                                    "verdict": "crit"}]
    assert [(s["name"], s["outcome"]) for s in dr["steps"]] == [("stop_api", "passed"), ("verify:api_health", "failed")]
    assert "the latest DR drill did not pass (failed at step verify:api_health)" in doc["missing"]
    text = _text(render(doc, "html"))
    assert "None" not in text.split("Drills")[1].split("Waivers")[0]
    assert "Drill of backup set nightly" in text and "Drill of scenario outage" in text
    assert "rows.users (480) >= 500 [crit]" in text and f"api_health ('{failure}') == 'ok' [crit]" in text
    assert "verify: failed in 0.4 s (failed: rows.users)" in text and "stop_api: passed in 0.2 s" in text
    assert "Confirmed by alice (--allow-destructive)" in text and "Confirmed by not recorded" in text
    markdown = render(doc, "md")
    assert "| Drill of | backup set nightly |" in markdown and "| Drill of | scenario outage |" in markdown


def test_drill_that_stopped_before_it_found_a_backup_prints_no_none(project):
    """A restore drill that stopped early recorded no backup, no finish and no target; a DR record without
    its scenario: every block says "not recorded", never "None" (the report once printed "Scenario None")."""
    env_file, path = project
    when = NOW - timedelta(days=1)
    early = {"kind": "restore", "backup_set": "nightly", "started_at": when.isoformat(), "outcome": "failed",
             "failed_step": "find_backup", "error": "no backup in /var/backups", "steps": [], "verifications": []}
    add_run(path.parent.parent, when, "backup", [check("test_restores", "failed", drill=early)], schema_version=2)
    nameless = {"kind": "dr", "started_at": when.isoformat(), "outcome": "failed", "steps": [], "verifications": []}
    add_run(path.parent.parent, when + timedelta(seconds=1), "dr", [check("test_dr", "failed", drill=nameless)],
            schema_version=2)
    doc = doc_for(project)
    drills = _text(render(doc, "html")).split("Drills")[1].split("Waivers")[0]
    assert "None" not in drills
    assert "Drill of backup set nightly" in drills and "Drill of scenario (not recorded)" in drills
    assert "Backup nightly, backup not recorded, taken not recorded" in drills
    assert "Started / finished (UTC) " + when.isoformat() + " / not recorded" in drills
    markdown = render(doc, "md").split("## Drills")[1].split("## Waivers")[0]
    assert "None" not in markdown and "| Backup | nightly, backup not recorded, taken not recorded |" in markdown


def test_unreadable_drill_record_is_said_not_dropped(project):
    env_file, path = project
    when = NOW - timedelta(days=1)
    add_run(path.parent.parent, when, "dr", [check("test_dr_drill", drill={"kind": "dr", "verifications": ["ok"]})])
    assert any(line.startswith("the drill record of checks/test_x.py::test_dr_drill[main] in run ")
               and "cannot be read" in line for line in doc_for(project)["missing"])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_report_with_long_ids_and_evidence_fits_a_1280_px_window(project, tmp_path):
    """Check ids, evidence and hashes wrap inside their cells: nothing is wider than the window."""
    from chromium import measure  # tests/chromium.py: the page measures itself

    env_file, path = project
    when = NOW - timedelta(days=1)
    long_id = "checks/test_postgres.py::test_postgres_invariant_holds[" + "ledger_balances_match_" * 6 + "]"
    evidence = {"measurements": [{"measure": "checksum", "value": "sha256:" + "9f" * 64, "op": "==",
                                  "limit": "sha256:" + "0a" * 64, "verdict": "crit"}]}
    add_run(path.parent.parent, when, "nightly", [check(long_id.removeprefix("checks/test_x.py::"), "failed",
                                                        **evidence)])
    page = tmp_path / "readiness.html"
    page.write_text(render(doc_for(project), "html"))
    measured = measure(page, width=1280, timeout_s=120)
    assert measured["scroll_width"] <= measured["inner_width"] == 1280, measured["widest"]
