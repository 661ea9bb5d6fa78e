"""Retention: opsproof prune removes old run folders, records what it removed, and keeps drill runs."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from opsproof import history
from opsproof.runlock import RunLock
from test_history_signing import add_run, drill, make_key

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def reports(tmp_path) -> Path:
    """Eight runs: DR drills 500, 350 and 300 days ago; smoke 200, 120, 100 and 10 days ago; nightly 95 days ago."""
    base = tmp_path / "reports" / "unit"
    for days, suite in ((500, "dr"), (350, "dr"), (300, "dr"), (200, "smoke"), (120, "smoke"), (100, "smoke"), (95, "nightly"),
                        (10, "smoke")):
        when = NOW - timedelta(days=days)
        checks = [{"id": "checks/test_dr.py::test_dr_drill", "outcome": "passed", "drill": drill(when)}] \
            if suite == "dr" else None
        add_run(base, f"{when:%Y%m%dT%H%M%SZ}-{suite}", suite, checks=checks, when=when)
    (tmp_path / "unit.yaml").write_text("tier: staging\n")
    return base


def cli(capsys, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    from opsproof.cli import main

    capsys.readouterr()
    code = main([*args, "--env", str(tmp_path / "unit.yaml"), "--reports-dir", str(tmp_path / "reports")])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def folders(base: Path) -> list[str]:
    """``suite@age in days`` of each run folder left."""
    def age(name: str) -> int:
        return (NOW - datetime.strptime(name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)).days

    return sorted(f"{p.name.split('-', 1)[1]}@{age(p.name)}" for p in base.iterdir() if p.is_dir())


def test_prune_removes_old_runs_keeps_drills_and_history_still_verifies(reports, tmp_path, capsys):
    assert cli(capsys, tmp_path, "history", "verify").returncode == 0
    dry = cli(capsys, tmp_path, "prune", "--keep", "90d", "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0 and "would prune 4 run folder(s) older than 90d" in dry.stdout
    assert len(folders(reports)) == 8

    pruned = cli(capsys, tmp_path, "prune", "--keep", "90d", "--keep-last", "1")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    # the newest of each suite stays (--keep-last 1), and so does the 350-day drill (drill runs: 400 days)
    assert folders(reports) == ["dr@300", "dr@350", "nightly@95", "smoke@10"]
    assert "holds a drill record (kept 400 days; --include-drills)" in pruned.stdout
    record = history.read(reports / "history.jsonl")[-1]
    assert record["type"] == "prune" and record["seq"] == 9 and record["keep"] == "90d" and record["keep_last"] == 1
    assert [r["run_id"].split("-", 1)[1] for r in record["pruned"]] == ["dr", "smoke", "smoke", "smoke"]
    assert all(len(a["sha256"]) == 64 for r in record["pruned"] for a in r["artifacts"])
    assert f"recorded as history seq 9 in {reports / 'history.jsonl'}" in pruned.stdout

    verified = cli(capsys, tmp_path, "history", "verify")
    assert verified.returncode == 0, verified.stdout
    ready = cli(capsys, tmp_path, "readiness", "--format", "json", "--since", "2000-01-01", "--output",
                str(tmp_path / "r.json"))
    assert ready.returncode == 0, ready.stdout + ready.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    statuses = {run["run_id"].split("-", 1)[1] + str(i): {a["status"] for a in run["artifacts"]}
                for i, run in enumerate(doc["runs"])}
    assert list(statuses.values()).count({"pruned under retention"}) == 4
    assert list(statuses.values()).count({"verified"}) == 4
    assert "missing" not in str(statuses)

    again = cli(capsys, tmp_path, "prune", "--keep", "90d", "--include-drills")
    assert again.returncode == 0 and folders(reports) == ["smoke@10"]
    assert cli(capsys, tmp_path, "history", "verify").returncode == 0


def test_prune_refuses_a_history_that_does_not_verify(reports, tmp_path, capsys):
    old = sorted(p for p in reports.iterdir() if p.is_dir() and p.name.endswith("smoke"))[0]
    (old / "junit.xml").write_text("<testsuites><!-- edited --></testsuites>")
    result = cli(capsys, tmp_path, "prune", "--keep", "90d")
    assert result.returncode == 1 and result.stderr.startswith(
        f"opsproof: prune refused: the history does not verify (line 4: artifact {old.name}/junit.xml changed after "
        f"the run (sha256 mismatch))")
    assert len(folders(reports)) == 8 and "type" not in history.read(reports / "history.jsonl")[-1]


def test_a_changed_artifact_is_never_pruned(reports, tmp_path):
    from opsproof.history import prune

    old = sorted(p for p in reports.iterdir() if p.is_dir() and p.name.endswith("smoke"))[0]
    (old / "junit.xml").write_text("<testsuites><!-- edited --></testsuites>")
    chosen = prune.plan(reports / "history.jsonl", reports, 90 * 86400)
    assert f"{old.name}: junit.xml missing or changed since the run (kept as evidence; see history verify)" in \
        chosen.refused
    assert old.name not in [run["run_id"] for run in chosen.prune]


def test_a_deleted_run_folder_is_still_missing_not_pruned(reports, tmp_path, capsys):
    victim = sorted(p for p in reports.iterdir() if p.is_dir() and p.name.endswith("nightly"))[0]
    for file in victim.iterdir():
        file.unlink()
    victim.rmdir()
    verified = cli(capsys, tmp_path, "history", "verify")
    assert f"artifact {victim.name}/results.json is missing" in verified.stdout


def test_prune_signs_its_record_and_waits_for_no_run(reports, tmp_path, capsys):
    signer = make_key(tmp_path / "key.pem")
    (tmp_path / "unit.yaml").write_text(f"tier: staging\nhistory_signing_key: key.pem\n"
                                        f"history_public_key: {signer.fingerprint}\n")
    refused = cli(capsys, tmp_path, "prune", "--keep", "90d")  # pinned, and nothing signed yet
    assert refused.returncode == 1 and "no record is signed, but history_public_key in" in refused.stderr
    add_run(reports, "signed-run", signer=signer)  # the first run after the key was set
    running = RunLock(reports, "unit", "smoke")
    running.acquire()
    refused = cli(capsys, tmp_path, "prune", "--keep", "90d")
    assert refused.returncode == 3
    assert "opsproof: environment unit is locked by another run: pid" in refused.stderr and "suite smoke" in refused.stderr
    running.release()
    assert cli(capsys, tmp_path, "prune", "--keep", "90d").returncode == 0
    record = history.read(reports / "history.jsonl")[-1]
    assert record["type"] == "prune" and record["signed_by"] == signer.fingerprint
    result = history.verify(reports / "history.jsonl", trust=history.Trust((signer.fingerprint,), "pin"))
    assert result.problems == [] and result.notes == [
        "the 8 record(s) before line 9 are not signed (written before history_signing_key was set)"]
    assert record["seq"] == 10


def test_prune_refuses_bad_durations(reports, tmp_path, capsys):
    result = cli(capsys, tmp_path, "prune", "--keep", "ninety days")
    assert result.returncode == 4 and result.stderr.startswith("opsproof: --keep: 'ninety days' is not a duration")
