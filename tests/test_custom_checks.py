"""Checks of your own: the ``custom:`` section, the worked example, and a team's check dropped into checks/.

A check a team writes runs with the built-in checks' gate, evidence, redaction, reports and history.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, read_results, sandbox_environment
from opsproof import history
from opsproof.environment import load_environment
from opsproof.errors import ConfigError

VARIABLES = {"TEST_PG_PASSWORD": "placeholder", "TEST_REDIS_PASSWORD": "placeholder"}
EXAMPLE = "checks/examples/test_reconciliation.py::test_reconciliation_mismatches_within_limit[main]"


def mismatches(sandbox, **limits) -> dict:
    entry = {"target": "postgres.main", "window": "24h", **limits}
    return sandbox_environment(sandbox, custom={"reconciliation_mismatches": entry})


# --- the worked example, on the sandbox's seeded reconciliation_logs (3 mismatches in 24 h) -----------

def test_worked_example_passes_and_records_the_mismatched_accounts(sandbox, write_env, run_checks):
    run = run_checks(write_env(mismatches(sandbox, warn=5, crit=20)), "-k", "reconciliation")
    record = run.record("test_reconciliation_mismatches_within_limit")
    assert run.ret == 0 and record["outcome"] == "passed" and record["where"] == "postgres.main"
    worst, judged = record["measurements"]
    assert [m["actual"] for m in worst["value"]] == [99.5, 99.5, 99.5]
    assert judged == {"measure": "reconciliation_mismatches", "value": 3, "op": "<=", "warn": 5.0, "crit": 20.0,
                      "verdict": "ok"}


def test_worked_example_between_warn_and_crit_is_warned(sandbox, write_env, run_checks):
    run = run_checks(write_env(mismatches(sandbox, warn=2, crit=20)), "-k", "reconciliation")
    record = run.record("test_reconciliation_mismatches_within_limit")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert record["message"] == "reconciliation_mismatches (3) <= 2 on postgres.main (warn)"


def test_worked_example_past_crit_fails_with_its_evidence_in_every_report(sandbox, write_env, run_checks):
    run = run_checks(write_env(mismatches(sandbox, crit=2)), "-k", "reconciliation")
    evidence = "reconciliation_mismatches (3) <= 2 on postgres.main (crit)"
    record = run.record("test_reconciliation_mismatches_within_limit")
    assert run.ret == 1 and record["outcome"] == "failed" and record["gating"] and record["severity"] == "p1"
    assert record["id"] == EXAMPLE and record["message"] == evidence
    assert f"BLOCKS FAILED  p1 {EXAMPLE}: {evidence}" in run.output
    failure = ET.parse(run.run_dir / "junit.xml").getroot().find(".//testcase/failure")
    assert failure.get("message").endswith(evidence)
    (last,) = history.read(run.run_dir.parent / "history.jsonl")
    assert last["verdict"] == run.results["verdict"] == f"FAIL (gate p1): 1 gating of 1 checks [1 failed]; first: {EXAMPLE}"
    assert last["exit_code"] == 1 and last["counts"] == {"failed": 1}
    results = next(a for a in last["artifacts"] if a["name"] == "results.json")
    assert results["sha256"] == history.sha256_file(run.run_dir / "results.json")


def test_worked_example_skips_where_the_environment_sets_no_entry(sandbox, write_env, run_checks):
    run = run_checks(write_env(sandbox_environment(sandbox)), "-k", "reconciliation")
    record = run.record("test_reconciliation_mismatches_within_limit")
    assert run.ret == 0 and record["outcome"] == "skipped"
    assert record["message"] == "environment under-test sets no custom.reconciliation_mismatches"


def test_worked_example_runs_only_on_the_target_its_entry_names(sandbox, write_env, run_checks):
    environment = mismatches(sandbox, crit=20)
    environment["postgres"]["reporting"] = dict(environment["postgres"]["main"])
    run = run_checks(write_env(environment), "-k", "reconciliation")
    assert run.record("test_reconciliation_mismatches_within_limit", "main")["outcome"] == "passed"
    other = run.record("test_reconciliation_mismatches_within_limit", "reporting")
    assert (other["outcome"], other["message"]) == (
        "skipped", "custom.reconciliation_mismatches is for postgres.main, not postgres.reporting")


def test_worked_example_skips_an_entry_without_its_window(sandbox, write_env, run_checks):
    environment = sandbox_environment(sandbox, custom={"reconciliation_mismatches": {"crit": 2}})
    record = run_checks(write_env(environment), "-k", "reconciliation").record(
        "test_reconciliation_mismatches_within_limit")
    assert record["outcome"] == "skipped" and record["message"] == "custom.reconciliation_mismatches sets no window"


# --- the custom: section is validated like the built-in thresholds -----------------------------------

@pytest.mark.parametrize("entry, error", [
    ({"x": {"warn": 10, "crit": 5}}, "custom.x: warn (10) must not be above crit (5): higher is worse"),
    ({"x": {"warn": 5, "crit": 10, "worse": "lower"}}, "custom.x: warn (5) must not be below crit (10): lower is worse"),
    ({"x_pct": {"crit": 120}}, "custom.x_pct: crit (120) is a percentage and must be within 0..100"),
    ({"oldest": {"crit": "2h"}}, "custom.oldest: crit: '2h' is a duration; end the name in _s so the evidence says "
                                 "its unit"),
    ({"oldest_s": {"crit": "2 hours"}}, "custom.oldest_s: '2 hours' is not a duration like 24h, 30m, 1h30m or 7d"),
    ({"x": {"window": "soon"}}, "custom.x.window: 'soon' is not a duration like 24h, 30m, 1h30m or 7d"),
    ({"x": {"target": "postgres.replica"}}, "custom.x.target: postgres.replica is not a target in this environment"),
    ({"x": {"values": {"nested": {"a": 1}}}}, "custom.x.values: nested: give a number, text, true/false or a list "
                                              "of them"),
    ({"x": {"limit": 5}}, "custom.x.limit: unknown key"),
    ({"Sanctions-Errors": {}}, "custom.Sanctions-Errors.[key]: must be lower case letters, digits and '_', "
                               "starting with a letter"),
])
def test_custom_entries_are_validated_when_the_file_loads(sandbox, write_env, entry, error):
    with pytest.raises(ConfigError) as raised:
        load_environment(write_env(sandbox_environment(sandbox, custom=entry)), VARIABLES)
    assert f"{raised.value.key_path}: {raised.value.problem}".removeprefix(": ") == error


def test_custom_durations_are_seconds_and_limits_are_typed(sandbox, write_env):
    custom = {"oldest_pending_settlement_s": {"warn": "30m", "crit": "2h"},
              "sanctions_error_rate_pct": {"warn": 5, "crit": 10, "window": "1h", "values": {"provider": "ofac"}}}
    loaded = load_environment(write_env(sandbox_environment(sandbox, custom=custom)), VARIABLES).environment
    oldest, rate = loaded.custom["oldest_pending_settlement_s"], loaded.custom["sanctions_error_rate_pct"]
    assert (oldest.threshold.warn, oldest.threshold.crit, oldest.threshold.ok_op) == (1800, 7200, "<=")
    assert (rate.window_s, rate.values, rate.target) == (3600, {"provider": "ofac"}, None)


def test_a_password_written_into_a_custom_url_is_registered_for_redaction(sandbox, write_env):
    custom = {"sanctions_alerts": {"values": {"provider": "https://screening:literal-pw-93c1@screening.example/v1"}}}
    loaded = load_environment(write_env(sandbox_environment(sandbox, custom=custom)), VARIABLES)
    assert "literal-pw-93c1" in loaded.secrets


# --- a team's own check, dropped into checks/ --------------------------------------------------------

CANARY = "canary-sanctions-key-5d1f0b"

TEAM_CHECK = '''
    """Bankchain sanctions screening ("Sanctions Screening Failures"): few sanctions alerts over the window."""

    import pytest

    pytestmark = [pytest.mark.nightly]


    @pytest.mark.p1
    def test_sanctions_alerts_within_limit(postgres_target, postgres, custom, evidence):
        limits = custom("sanctions_alerts", "window", "provider_url")
        print(f"screening provider {limits.values['provider_url']}")
        evidence.record("provider", limits.values["provider_url"])
        count = postgres.scalar("SELECT count(*) FROM compliance_alerts WHERE rule = 'sanctions'"
                                " AND created_at > now() - make_interval(secs => %s)", (limits.window_s,))
        evidence.judge(limits.name, count, limits.threshold)
'''


def test_a_team_check_gets_the_gate_evidence_redaction_reports_and_history(pytester, sandbox, monkeypatch):
    monkeypatch.setenv("TEST_PG_PASSWORD", sandbox.pg_password)
    monkeypatch.setenv("SANCTIONS_API_KEY", CANARY)  # *KEY*: a secret, redacted wherever it would appear
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)
    for name in ("pyproject.toml", "conftest.py"):
        shutil.copy(ROOT / name, pytester.path / name)
    (pytester.path / "checks").mkdir()
    (pytester.path / "checks" / "test_sanctions.py").write_text(textwrap.dedent(TEAM_CHECK))
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "bankchain.yaml").write_text(json.dumps({
        "name": "bankchain", "tier": "staging",
        "postgres": {"main": {"dsn": sandbox.pg_dsn, "password": "${TEST_PG_PASSWORD}"}},
        "custom": {"sanctions_alerts": {"target": "postgres.main", "window": "30d", "warn": 2, "crit": 5,
                                        "values": {"provider_url": "https://screening.example/v1?key=${SANCTIONS_API_KEY}"}}},
    }))
    result = pytester.runpytest_inprocess("--env", "bankchain")
    output = result.stdout.str() + result.stderr.str()

    evidence = "sanctions_alerts (10) <= 5 on postgres.main (crit)"  # the seed: one in three alerts, daily
    check_id = "checks/test_sanctions.py::test_sanctions_alerts_within_limit[main]"
    assert result.ret == 1, output
    assert f"BLOCKS FAILED  p1 {check_id}: {evidence}" in output
    (run_dir,) = (pytester.path / "reports" / "bankchain").glob("*-all")
    record = read_results(run_dir / "results.json")["checks"][0]
    assert (record["id"], record["outcome"], record["message"], record["gating"]) == (check_id, "failed", evidence, True)
    assert record["measurements"][0] == {"measure": "provider", "value": "https://screening.example/v1?key=***"}
    failure = ET.parse(run_dir / "junit.xml").getroot().find(".//testcase/failure")
    assert failure.get("message") == f"checks/test_sanctions.py:9: {evidence}"
    assert "screening provider https://screening.example/v1?key=***" in (run_dir / "report.html").read_text()
    (last,) = history.read(run_dir.parent / "history.jsonl")
    assert last["verdict"] == f"FAIL (gate p1): 1 gating of 1 checks [1 failed]; first: {check_id}"
    assert history.verify(run_dir.parent / "history.jsonl").problems == []
    leaks = [str(p) for p in pytester.path.joinpath("reports").rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == [] and CANARY not in output
    assert "screening provider https://screening.example/v1?key=***" in output  # the captured print, redacted
