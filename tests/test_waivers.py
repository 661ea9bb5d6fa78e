"""Waivers: a waived failure does not gate and shows every field; expired ones say so; unused ones are stale."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import yaml

from conftest import read_results
from opsproof.waivers import Waiver, decide

TODAY = date.today()
CHECKS = """\
import pytest

pytestmark = pytest.mark.p1

def test_disk_is_fine(): assert False, "disk_used_pct (97.0) <= 90 on host.db"
def test_queue_is_short(): assert False, "queue_length (9000) <= 5000 on redis.cache"
def test_api_is_up(): pass
"""


def waiver(check: str, expires: date = TODAY + timedelta(days=30), **fields) -> dict:
    return {"check": check, "justification": "disk expansion scheduled", "approver": "J. Doe (SRE lead)",
            "ticket": "OPS-123", "created": (TODAY - timedelta(days=5)).isoformat(), "expires": str(expires),
            **fields}


def project(pytester, waivers, env_extra: str = "") -> None:
    pytester.makefile(".ini", pytest="[pytest]\nopsproof_env = unit\nmarkers =\n    p1: p1\n    p2: p2\n")
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "unit.yaml").write_text(f"tier: staging\n{env_extra}")
    if waivers is not None:
        text = waivers if isinstance(waivers, str) else yaml.safe_dump({"waivers": waivers})
        (pytester.path / "environments" / "unit.waivers.yaml").write_text(text)
    pytester.makepyfile(test_checks=CHECKS)


def run(pytester):
    result = pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly")
    (found,) = list((pytester.path / "reports").glob("*/*/results.json"))
    return result, read_results(found)


def by_check(results: dict, name: str) -> dict:
    return next(r for r in results["checks"] if r["check"] == name)


def test_matching_is_a_pure_function_of_id_waivers_and_date():
    valid = Waiver(**waiver("*test_disk_*"))
    old = Waiver(**waiver("test_checks.py::test_queue_is_short", expires=TODAY - timedelta(days=1)))
    assert decide("test_checks.py::test_disk_is_fine", [old, valid], TODAY).waiver == valid
    expired = decide("test_checks.py::test_queue_is_short", [old, valid], TODAY)
    assert expired.waiver is None and expired.note == f"waiver expired on {old.expires}"
    assert decide("checks/test_http.py::test_health[api]", [valid], TODAY).waiver is None
    exact = Waiver(**waiver("checks/test_http.py::test_health[api]"))  # brackets taken literally too
    assert decide("checks/test_http.py::test_health[api]", [exact], TODAY).waiver == exact


def test_waived_failure_does_not_gate_and_shows_every_field(pytester):
    project(pytester, [waiver("*test_disk_is_fine"), waiver("*test_queue_is_short")])
    result, results = run(pytester)
    assert result.ret == 0
    disk = by_check(results, "test_disk_is_fine")
    assert disk["outcome"] == "waived" and disk["gating"] is False
    assert disk["waiver"] == waiver("*test_disk_is_fine")
    assert disk["message"] == "disk_used_pct (97.0) <= 90 on host.db"
    assert results["verdict"] == "PASS (gate p1): 3 checks [1 passed, 2 waived]"
    result.stdout.fnmatch_lines([
        "WAIVED  test_checks.py::test_disk_is_fine: disk_used_pct (97.0) <= 90 on host.db [waiver *test_disk_is_fine: "
        f"disk expansion scheduled; approver J. Doe (SRE lead); ticket OPS-123; created {TODAY - timedelta(days=5)}; "
        f"expires {TODAY + timedelta(days=30)}]",
    ])
    html = next((pytester.path / "reports").glob("*/*/report.html")).read_text()
    assert "Waived failures" in html and "J. Doe (SRE lead)" in html and "waived (OPS-123" in html


def test_expired_waiver_no_longer_applies_and_says_so(pytester):
    yesterday = TODAY - timedelta(days=1)
    project(pytester, [waiver("*test_disk_is_fine", expires=yesterday), waiver("*test_queue_is_short")])
    result, results = run(pytester)
    assert result.ret == 1
    disk = by_check(results, "test_disk_is_fine")
    assert disk["outcome"] == "failed" and disk["gating"] is True
    assert disk["message"] == f"disk_used_pct (97.0) <= 90 on host.db (waiver expired on {yesterday})"
    assert [w["check"] for w in results["waivers"]["expired"]] == ["*test_disk_is_fine"]


def test_waiver_matching_nothing_is_stale(pytester):
    project(pytester, [waiver("*test_disk_is_fine"), waiver("*test_queue_is_short"), waiver("*test_gone*"),
                       waiver("*test_api_is_up")])
    result, results = run(pytester)
    assert result.ret == 0
    stale = {w["check"]: w["reason"] for w in results["waivers"]["stale"]}
    assert stale == {"*test_gone*": "matches no check in this run", "*test_api_is_up": "matched checks passed"}
    result.stdout.fnmatch_lines(["STALE waiver *test_gone* (OPS-123): matches no check in this run"])


@pytest.mark.parametrize("content, line", [
    (yaml.safe_dump({"waivers": [waiver("*x", approver="")]}),
     "unit.waivers.yaml: waivers.0.approver: String should have at least 1 character"),
    (yaml.safe_dump({"waivers": [waiver("*x", expires="2020-01-01")]}),
     "unit.waivers.yaml: waivers.0: expires (2020-01-01) is before created"),
    (yaml.safe_dump({"waivers": [waiver("*x", owner="me")]}), "unit.waivers.yaml: waivers.0.owner: unknown key"),
    (yaml.safe_dump({"waivers": [{"check": "*x"}]}), "unit.waivers.yaml: waivers.0.justification: Field required"),
])
def test_malformed_waivers_are_environment_file_errors(pytester, content, line):
    project(pytester, content)
    result = pytester.runpytest_inprocess("-p", "fixtures.plugin")
    assert result.ret == 4
    assert line in result.stderr.str()


def test_waivers_file_is_taken_from_the_environment(pytester):
    project(pytester, None, env_extra="waivers_file: ../known-failures.yaml\n")
    (pytester.path / "known-failures.yaml").write_text(yaml.safe_dump({"waivers": [
        waiver("*test_disk_is_fine"), waiver("*test_queue_is_short")]}))
    result, results = run(pytester)
    assert result.ret == 0 and len(results["waivers"]["applied"]) == 2


def test_validate_checks_the_waivers_file_too(tmp_path):
    import subprocess
    import sys

    (tmp_path / "unit.yaml").write_text("tier: staging\n")
    (tmp_path / "unit.waivers.yaml").write_text(yaml.safe_dump({"waivers": [waiver("*x", ticket="")]}))
    result = subprocess.run([sys.executable, "-m", "opsproof.cli", "validate", str(tmp_path / "unit.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert result.stderr.strip().endswith("unit.waivers.yaml: waivers.0.ticket: String should have at least 1 character")


def test_waivers_apply_in_the_controller_under_xdist(pytester, monkeypatch):
    from conftest import ROOT

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    project(pytester, [waiver("*test_disk_is_fine"), waiver("*test_queue_is_short")])
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "-n", "2")
    assert result.ret == 0
    (found,) = list((pytester.path / "reports").glob("*/*/results.json"))
    assert read_results(found)["verdict"] == "PASS (gate p1): 3 checks [1 passed, 2 waived]"
