"""The hash-chained history: every run appends one record; `history verify` names each kind of tampering."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from opsproof import history

ENV = "tier: staging\nhttp: {}\n"


def make_run(base: Path, name: str) -> Path:
    run_dir = base / name
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({
        "environment": {"name": "unit", "tier": "staging"}, "suite": "smoke", "started_at": "2026-11-23T10:00:00+00:00",
        "finished_at": "2026-11-23T10:00:05+00:00", "verdict": "PASS (gate p1): 1 checks [1 passed]", "exit_code": 0,
        "checks": [{"outcome": "passed"}],
    }))
    (run_dir / "junit.xml").write_text("<testsuites/>")
    return run_dir


@pytest.fixture
def chain(tmp_path) -> Path:
    """A history of four runs, each with its artifacts."""
    path = tmp_path / "history.jsonl"
    for n in range(1, 5):
        run_dir = make_run(tmp_path, f"run{n}")
        history.append(path, history.record_for_run(run_dir, path, tmp_path))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rewrite(path: Path, new_lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in new_lines))


def test_intact_history_verifies(chain):
    result = history.verify(chain)
    assert result.ok, result.problems
    assert result.records == 4
    first, second = (json.loads(line) for line in lines(chain)[:2])
    assert first["prev_hash"] == history.GENESIS and second["prev_hash"] == first["hash"]
    assert [a["path"] for a in first["artifacts"]] == ["run1/junit.xml", "run1/results.json"]
    assert first["counts"] == {"passed": 1} and first["git_revision"]


def test_edited_record_is_named(chain):
    edited = lines(chain)
    edited[1] = edited[1].replace('"passed": 1', '"passed": 2')
    rewrite(chain, edited)
    assert history.verify(chain).problems == ["line 2: record edited (its content does not match its hash)"]


def test_removed_record_is_named(chain):
    rewrite(chain, [line for n, line in enumerate(lines(chain)) if n != 1])
    assert history.verify(chain).problems == [
        "line 2: record(s) removed before it (seq 3, expected 2)",
        "run folder run2 has no history record (a record removed from the end, or a run that was not recorded)"]


def test_removed_last_record_is_named_by_its_run_folder(chain):
    rewrite(chain, lines(chain)[:-1])
    assert history.verify(chain).problems == [
        "run folder run4 has no history record (a record removed from the end, or a run that was not recorded)"]


def test_runs_from_before_the_history_began_are_not_flagged(chain, tmp_path):
    old = make_run(tmp_path, "run0-before-history")
    results = json.loads((old / "results.json").read_text())
    (old / "results.json").write_text(json.dumps({**results, "started_at": "2026-01-01T00:00:00+00:00"}))
    assert history.verify(chain).ok


def test_reordered_records_are_named(chain):
    old = lines(chain)
    rewrite(chain, [old[0], old[2], old[1], old[3]])
    problems = history.verify(chain).problems
    assert problems[0] == "line 2: record(s) removed before it (seq 3, expected 2)"
    assert "line 3: records reordered (seq 2 after seq 3)" in problems


def test_inserted_record_is_named_even_with_a_valid_own_hash(chain):
    old = lines(chain)
    forged = json.loads(old[1])
    forged["verdict"] = "PASS (forged)"
    forged["hash"] = history.record_hash(forged)  # self-consistent, but the chain after it breaks
    rewrite(chain, [old[0], old[1], json.dumps(forged), *old[2:]])
    problems = history.verify(chain).problems
    assert problems == ["line 3: records reordered (seq 2 after seq 2)",
                        "line 4: record inserted or replaced (prev_hash does not match line 3)"]


def test_tampered_artifact_is_a_sha_mismatch(chain, tmp_path):
    (tmp_path / "run3" / "junit.xml").write_text("<testsuites><!-- edited --></testsuites>")
    assert history.verify(chain).problems == [
        "line 3: artifact run3/junit.xml changed after the run (sha256 mismatch)"]


def test_concurrent_appends_keep_one_chain(tmp_path):
    path = tmp_path / "history.jsonl"
    run_dir = make_run(tmp_path, "run")
    record = history.record_for_run(run_dir, path, tmp_path)
    threads = [threading.Thread(target=history.append, args=(path, record)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = history.verify(path)
    assert result.ok and result.records == 8


def test_each_run_appends_with_artifact_hashes_after_the_scrub(pytester, monkeypatch):
    monkeypatch.setenv("OPSPROOF_OPERATOR", "ci-job-42")
    pytester.makefile(".ini", pytest="[pytest]\nopsproof_env = unit\nmarkers =\n    smoke: s\n")
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "unit.yaml").write_text(ENV)
    pytester.makepyfile(test_checks="def test_ok(): pass\n")
    for _ in range(2):
        assert pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly").ret == 0
    path = pytester.path / "reports" / "unit" / "history.jsonl"
    result = history.verify(path)
    assert result.ok, result.problems
    first, second = history.read(path)
    assert (first["seq"], second["seq"]) == (1, 2) and second["prev_hash"] == first["hash"]
    assert first["operator"] == "ci-job-42" and first["environment"] == "unit" and first["counts"] == {"passed": 1}
    assert {a["name"] for a in first["artifacts"]} == {"report.html", "junit.xml", "results.json"}


def test_history_verify_cli_exit_codes(chain, tmp_path):
    env_file = tmp_path / "unit.yaml"
    env_file.write_text(textwrap.dedent("""\
        tier: staging
        history_dir: .
        postgres: {main: {dsn: "postgresql://x@db/y", password: "${NOT_SET_ANYWHERE}"}}
    """))
    command = [sys.executable, "-m", "opsproof.cli", "history", "verify", "--env", str(env_file)]
    intact = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "history intact" in intact.stdout and "4 records" in intact.stdout
    rewrite(chain, lines(chain)[:1] + lines(chain)[2:])
    broken = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "line 2: record(s) removed before it (seq 3, expected 2)" in broken.stdout


def test_history_lives_where_the_environment_says(pytester):
    pytester.makefile(".ini", pytest="[pytest]\nopsproof_env = unit\n")
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "unit.yaml").write_text(ENV + "history_dir: ../shared/audit\n")
    (pytester.path / "shared" / "audit").mkdir(parents=True)  # a history_dir must exist at load
    pytester.makepyfile(test_checks="def test_ok(): pass\n")
    assert pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly").ret == 0
    assert not (pytester.path / "reports" / "unit" / "history.jsonl").exists()
    (record,) = history.read(pytester.path / "shared" / "audit" / "history.jsonl")
    assert record["artifacts"][0]["path"].startswith("../../reports/unit/")
    assert history.verify(pytester.path / "shared" / "audit" / "history.jsonl").ok
