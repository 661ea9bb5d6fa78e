"""The plugin in inner pytest sessions: selection, validation, parametrisation, outcomes, gate, reports."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import read_results

ROOT = Path(__file__).resolve().parent.parent

INI = """\
[pytest]
opsproof_env = {default_env}
markers =
    smoke: s
    nightly: n
    p0: p0
    p1: p1
    p2: p2
    p3: p3
"""

ENV = """\
tier: staging
http:
  api: {url: "http://127.0.0.1:9/"}
  web: {url: "http://127.0.0.1:9/", severity: p3}
"""


def make_project(pytester: pytest.Pytester, tests: str, env: str = ENV, name: str = "unit", default_env="unit"):
    pytester.makefile(".ini", pytest=INI.format(default_env=default_env))
    (pytester.path / "environments").mkdir(exist_ok=True)
    (pytester.path / "environments" / f"{name}.yaml").write_text(env)
    pytester.makepyfile(test_checks=textwrap.dedent(tests))


def run(pytester: pytest.Pytester, *args: str):
    return pytester.runpytest_inprocess("-p", "fixtures.plugin", *args)


def results(pytester: pytest.Pytester) -> dict:
    (found,) = list((pytester.path / "reports").glob("*/*/results.json"))
    return read_results(found)


# --- environment selection and validation ---------------------------------------------------------

def test_env_option_beats_variable_beats_ini(pytester, monkeypatch):
    make_project(pytester, "def test_nothing(): pass\n", name="from-ini", default_env="from-ini")
    for name in ("from-option", "from-variable"):
        (pytester.path / "environments" / f"{name}.yaml").write_text(ENV)
    monkeypatch.setenv("OPSPROOF_ENV", "from-variable")
    run(pytester, "--env", "from-option").stdout.fnmatch_lines(["*environment from-option*chosen by --env*"])
    run(pytester).stdout.fnmatch_lines(["*environment from-variable*chosen by $OPSPROOF_ENV*"])
    monkeypatch.delenv("OPSPROOF_ENV")
    run(pytester).stdout.fnmatch_lines(["*environment from-ini*chosen by ini default*"])


def test_a_percentage_written_as_a_fraction_is_warned_in_the_run_header(pytester):
    make_project(pytester, "def test_nothing(): pass\n", env=ENV + "redis:\n  cache:\n    url: redis://127.0.0.1:9/0\n"
                                                                    "    memory_pct: {warn: 0.8, crit: 95}\n")
    result = run(pytester, "--env", "unit", "--collect-only")  # the header, which -q leaves out
    path = pytester.path / "environments" / "unit.yaml"
    result.stdout.fnmatch_lines([f"opsproof: warning: {path}:8: redis.cache.memory_pct.warn: 0.8 is read as a "
                                 "percentage; if you meant 80 %, write 80*"])


def test_bad_environment_exits_4_with_one_line_and_writes_nothing(pytester):
    make_project(pytester, "def test_nothing(): pass\n",
                 env=ENV.replace("tier: staging", "tier: staging\nseverity: p9"))
    result = run(pytester, "--env", "unit")
    assert result.ret == 4
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == ["ERROR: environments/unit.yaml: severity: Input should be 'p0', 'p1', 'p2' or 'p3'"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "reports").exists()


def test_missing_environment_file_is_a_usage_error(pytester):
    make_project(pytester, "def test_nothing(): pass\n")
    result = run(pytester, "--env", "nope")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: environments/nope.yaml: no such environment file"])


# --- targets become parametrised checks -------------------------------------------------------------

def test_each_target_is_a_test_id_and_kinds_without_targets_skip(pytester):
    make_project(pytester, """
        def test_health_returns_expected_status(http_target): pass
        def test_postgres_answers_select_1(postgres_target): pass
    """)
    result = run(pytester, "--env", "unit", "-v", "-rs")
    result.stdout.fnmatch_lines([
        "*test_health_returns_expected_status[[]api[]] PASSED*",
        "*test_health_returns_expected_status[[]web[]] PASSED*",
        "*test_postgres_answers_select_1[[]no-postgres[]] SKIPPED*",
        "*no postgres targets in environment unit*",
    ])


def test_severity_is_target_then_marker_then_environment(pytester):
    make_project(pytester, """
        import pytest
        @pytest.mark.p0
        def test_marked(http_target): pass
        def test_unmarked(http_target): pass
    """)
    run(pytester, "--env", "unit")
    severities = {r["id"].split("::")[1]: r["severity"] for r in results(pytester)["checks"]}
    assert severities == {
        "test_marked[api]": "p0", "test_marked[web]": "p3", "test_unmarked[api]": "p2", "test_unmarked[web]": "p3",
    }
    unit = pytester.path / "environments" / "unit.yaml"
    unit.write_text(ENV.replace("tier: staging", "tier: staging\nseverity: p1"))
    run(pytester, "--env", "unit")  # the environment's severity is the unmarked checks' default, never over a marker
    (latest,) = sorted((pytester.path / "reports").glob("*/*/results.json"))[-1:]
    severities = {r["id"].split("::")[1]: r["severity"] for r in read_results(latest)["checks"]}
    assert severities == {
        "test_marked[api]": "p0", "test_marked[web]": "p3", "test_unmarked[api]": "p1", "test_unmarked[web]": "p3",
    }
    unit.write_text(ENV)
    run(pytester, "--env", "unit", "-m", "p3", "--collect-only", "-q").stdout.fnmatch_lines(
        ["*test_marked[[]web[]]", "*test_unmarked[[]web[]]"]
    )
    p0_only = run(pytester, "--env", "unit", "-m", "p0", "--collect-only", "-q").stdout.str()
    assert "test_marked[api]" in p0_only and "test_marked[web]" not in p0_only  # web demoted it to p3


# --- outcomes and the gate ----------------------------------------------------------------------------

CHECKS = """
    import pytest
    from opsproof.errors import ProbeError
    from opsproof.thresholds import Ceiling

    @pytest.mark.{severity}
    def test_subject(http_target, evidence):
        if http_target.name != "api":
            pytest.skip("only api")
        {body}
"""
BODIES = {
    "pass": 'evidence.expect("status_code", 200, "==", 200)',
    "fail": 'evidence.expect("status_code", 500, "==", 200)',
    "warn": 'evidence.within("response_time_ms", 700.0, Ceiling(warn=500, crit=2000))',
    "crit": 'evidence.within("response_time_ms", 2310.0, Ceiling(warn=500, crit=2000))',
    "error": 'raise ProbeError("GET /health: no response within 2 s", unreachable=True)',
}


@pytest.mark.parametrize(
    ("body", "severity", "args", "exit_code", "outcome"),
    [
        ("pass", "p0", [], 0, "passed"),
        ("fail", "p0", [], 1, "failed"),
        ("fail", "p1", [], 1, "failed"),
        ("fail", "p2", [], 0, "failed"),
        ("fail", "p2", ["--gate", "p2"], 1, "failed"),
        ("warn", "p1", [], 0, "warned"),
        ("warn", "p1", ["--fail-on-warn"], 1, "warned"),
        ("crit", "p1", [], 1, "failed"),
        ("error", "p1", [], 1, "error"),
        ("error", "p3", [], 0, "error"),
    ],
)
def test_gate_decides_exit_code(pytester, body, severity, args, exit_code, outcome):
    make_project(pytester, CHECKS.format(severity=severity, body=BODIES[body]))
    result = run(pytester, "--env", "unit", *args)
    assert result.ret == exit_code
    record = results(pytester)["checks"][0]
    assert (record["outcome"], record["severity"], record["gating"]) == (outcome, severity, bool(exit_code))


@pytest.mark.parametrize(("body", "severity", "exit_code"), [("fail", "p1", 1), ("fail", "p2", 0), ("warn", "p0", 0)])
def test_gate_holds_under_xdist(pytester, monkeypatch, body, severity, exit_code):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    make_project(pytester, CHECKS.format(severity=severity, body=BODIES[body]))
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--env", "unit", "-n", "2")
    assert result.ret == exit_code
    records = results(pytester)["checks"]
    assert {r["id"].split("::")[1]: r["outcome"] for r in records}["test_subject[api]"] == (
        "warned" if body == "warn" else "failed"
    )


def test_evidence_message_and_values_reach_results(pytester):
    make_project(pytester, CHECKS.format(severity="p1", body=BODIES["crit"]))
    result = run(pytester, "--env", "unit")
    result.stdout.fnmatch_lines(["*response_time_ms (2310.0) <= 2000 on http.api (crit)*"])
    record = results(pytester)["checks"][0]
    assert record["message"] == "response_time_ms (2310.0) <= 2000 on http.api (crit)"
    assert record["measurements"] == [
        {"measure": "response_time_ms", "value": 2310.0, "op": "<=", "warn": 500.0, "crit": 2000.0, "verdict": "crit"}
    ]


def test_warned_check_is_shown_and_counted(pytester):
    make_project(pytester, CHECKS.format(severity="p1", body=BODIES["warn"]))
    result = run(pytester, "--env", "unit", "-v")
    result.stdout.fnmatch_lines([
        "*test_subject[[]api[]] WARNED*",
        "*WARNED*p1 test_checks.py::test_subject[[]api[]]: response_time_ms (700.0) <= 500 on http.api (warn)",
        "opsproof: PASS (gate p1): 2 checks [[]1 warned, 1 skipped[]]*",
    ])
    assert results(pytester)["checks"][0]["outcome"] == "warned"


def test_passed_check_still_records_measured_values(pytester):
    make_project(pytester, CHECKS.format(severity="p1", body=BODIES["pass"]))
    run(pytester, "--env", "unit")
    assert results(pytester)["checks"][0]["measurements"][0]["value"] == 200


def test_probe_error_fails_in_one_line_with_its_output_and_skips_the_targets_other_checks(pytester):
    make_project(pytester, """
        import pytest
        from opsproof.errors import ProbeError

        @pytest.fixture
        def answer(http_target):
            if http_target.name == "web":
                raise ProbeError("GET /ready: ConnectError: refused")
        def test_a(http_target, probes, answer):
            print("asked " + http_target.name)
            raise ProbeError("GET /health: no response within 2 s", unreachable=True)
        def test_b(http_target, probes):
            probes.skip_if_unreachable(http_target)
    """)
    result = run(pytester, "--env", "unit", "-rA", "-p", "no:randomly")
    output = result.stdout.str()
    records = {r["id"].split("::")[1]: r for r in results(pytester)["checks"]}
    assert records["test_a[api]"]["outcome"] == "error" and records["test_a[web]"]["outcome"] == "error"
    assert records["test_a[api]"]["message"] == "could not measure on http.api: GET /health: no response within 2 s"
    assert records["test_a[web]"]["message"] == "could not measure on http.web: GET /ready: ConnectError: refused"
    assert (records["test_b[api]"]["outcome"], records["test_b[api]"]["message"]) == (
        "skipped", "http.api is unreachable: GET /health: no response within 2 s (in test_a[api])")
    assert records["test_b[web]"]["outcome"] == "passed"  # its error was not about the target answering
    assert "Traceback" not in output and "raise ProbeError" not in output
    result.stdout.fnmatch_lines(["*test_checks.py:*: could not measure on http.api: GET /health: no response*",
                                 "*Captured stdout call*", "asked api"])


def evidence_cells(pytester: pytest.Pytester) -> dict[str, str]:
    """Each check's Evidence lines in report.html's checks table, as text."""
    (page,) = list((pytester.path / "reports").glob("*/*/report.html"))
    rows = re.findall(r'<tr class="[a-z]+" data-check="([^"]*)">.*?<td class="col-evidence"><div class="lines">(.*?)</div>',
                      page.read_text())
    return {html.unescape(test): html.unescape(re.sub(r"<br>", "\n", cell)) for test, cell in rows}


QUEUES = """
    import pytest
    from opsproof.errors import ProbeError

    @pytest.mark.p1
    def test_queues(http_target, evidence):
        if http_target.name != "api":
            pytest.skip("only api")
        for name, length in {"emails": 3, "payouts": 9000, "refunds": 7, "webhooks": 12000}.items():
            evidence.expect(f"queue_length[{name}]", length, "<=", 5000)
        THEN
"""
FAILED_LINES = ["queue_length[payouts] (9000) <= 5000 on http.api", "queue_length[webhooks] (12000) <= 5000 on http.api"]


def test_every_comparison_is_judged_and_the_check_fails_once_naming_each(pytester):
    make_project(pytester, QUEUES.replace("THEN", "pass"))
    result = run(pytester, "--env", "unit")
    record = results(pytester)["checks"][0]
    assert result.ret == 1 and record["outcome"] == "failed"
    assert record["message"] == "; ".join(FAILED_LINES)
    assert [(m["measure"], m["verdict"]) for m in record["measurements"]] == [
        ("queue_length[emails]", "ok"), ("queue_length[payouts]", "crit"), ("queue_length[refunds]", "ok"),
        ("queue_length[webhooks]", "crit")]
    assert re.search(rf"^test_checks.py:\d+: {re.escape('; '.join(FAILED_LINES))}$", result.stdout.str(), re.M)
    assert "Traceback" not in result.stdout.str()
    cell = evidence_cells(pytester)["test_checks.py::test_queues[api]"]
    assert cell.splitlines() == ["queue_length[emails] (3) <= 5000", "queue_length[refunds] (7) <= 5000",
                                 "; ".join(FAILED_LINES)]  # each failed comparison once, as its evidence line


@pytest.mark.parametrize(("then", "outcome", "last"), [
    ('evidence.require("consumers", 0, ">=", 1)\n        1 / 0', "failed", "consumers (0) >= 1 on http.api"),
    ('pytest.skip("no consumer group configured")', "failed", None),
    ('raise ProbeError("XINFO GROUPS: timed out after 2 s")', "error",
     "could not measure on http.api: XINFO GROUPS: timed out after 2 s"),
    ("assert False, 'consumers (0) >= 1 on http.api'", "failed", "consumers (0) >= 1 on http.api"),
])
def test_comparisons_that_failed_stay_in_the_evidence_when_the_check_stops(pytester, then, outcome, last):
    """``require`` stops at once; a skip does not hide failed comparisons; a later error follows them."""
    make_project(pytester, QUEUES.replace("THEN", then))
    result = run(pytester, "--env", "unit")
    record = results(pytester)["checks"][0]
    assert result.ret == 1 and record["outcome"] == outcome
    assert record["message"] == "; ".join(FAILED_LINES + ([last] if last else []))


# --- reports ------------------------------------------------------------------------------------------

def test_failing_run_writes_all_three_reports_and_a_verdict(pytester):
    make_project(pytester, CHECKS.format(severity="p0", body=BODIES["fail"]))
    result = run(pytester, "--env", "unit", "-m", "p0 or p3")
    (run_dir,) = [p for p in (pytester.path / "reports" / "unit").iterdir() if p.is_dir()]  # beside history.jsonl
    assert run_dir.name.endswith("Z-p0-or-p3")
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "junit.xml", "results.json"}
    page = (run_dir / "report.html").read_text()
    assert "Severity" in page and "status_code (500) == 200 on http.api" in page
    assert evidence_cells(pytester)["test_checks.py::test_subject[api]"] == "status_code (500) == 200 on http.api"
    assert "status_code (500) == 200 on http.api" in (run_dir / "junit.xml").read_text()
    assert ".partial-" not in result.stdout.str()  # no plugin announces a file by the name it was written under
    result.stdout.fnmatch_lines([
        f"*generated xml file: {run_dir / 'junit.xml'} -*",
        f"report.html*{run_dir / 'report.html'}",
        "opsproof: FAIL (gate p1): 1 gating of 2 checks*first: test_checks.py::test_subject[[]api[]]",
    ])


def test_interrupted_run_still_writes_reports(pytester):
    make_project(pytester, """
        import pathlib, time
        def test_hangs(http_target):
            pathlib.Path("started").touch()
            time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "--env", "unit", "-p", "no:cacheprovider"],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (pytester.path / "started").exists() and process.poll() is None:
        time.sleep(0.1)  # until the check is running
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2, output
    data = results(pytester)
    assert data["interrupted"] is True and data["exit_code"] == 2
    assert data["verdict"] == "INTERRUPTED (gate p1): 1 of 2 checks finished [1 passed]"  # the hung one never did
    assert "opsproof: INTERRUPTED (gate p1)" in output and "opsproof: PASS" not in output
    (run_dir,) = [p for p in (pytester.path / "reports" / "unit").iterdir() if p.is_dir()]  # beside history.jsonl
    assert (run_dir / "junit.xml").exists() and (run_dir / "report.html").exists()


# --- review fixes: what a check cannot judge, suite narrowing, collect-only, secrets in skip reasons -------

def test_check_without_a_configured_threshold_skips_instead_of_passing(pytester):
    make_project(pytester, """
        import pytest
        @pytest.mark.p1
        def test_latency(http_target, evidence):
            evidence.judge("p95_latency_ms", 120.0, None)
    """)
    assert run(pytester, "--env", "unit").ret == 0
    record = results(pytester)["checks"][0]
    assert record["outcome"] == "skipped"
    assert record["message"] == "http.api sets no p95_latency_ms threshold (measured 120.0)"


def test_suite_and_marker_expression_narrow_together(pytester):
    make_project(pytester, """
        import pytest
        @pytest.mark.smoke
        @pytest.mark.p0
        def test_smoke_p0(http_target): pass
        @pytest.mark.nightly
        @pytest.mark.p0
        def test_nightly_p0(http_target): pass
    """)
    result = run(pytester, "--env", "unit", "--suite", "smoke", "-m", "p0", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_smoke_p0[[]api[]]"])
    assert "test_nightly_p0" not in result.stdout.str()


def test_collect_only_writes_no_run_and_no_history(pytester):
    make_project(pytester, "def test_nothing(http_target): pass\n")
    assert run(pytester, "--env", "unit", "--collect-only").ret == 0
    assert not (pytester.path / "reports").exists()


def test_secret_in_a_skip_reason_is_scrubbed_in_every_report(pytester, monkeypatch):
    secret = 'canary-t&k<n"9'  # HTML, XML and JSON each escape it differently
    monkeypatch.setenv("CANARY_TOKEN", secret)
    env = 'tier: staging\nhttp:\n  api: {url: "http://127.0.0.1:9/", headers: {Authorization: "${CANARY_TOKEN}"}}\n'
    make_project(pytester, """
        import pytest
        def test_skips(http_target):
            pytest.skip("token " + http_target.headers["Authorization"].get_secret_value())
    """, env=env)
    result = run(pytester, "--env", "unit", "-rA")
    output = result.stdout.str() + result.stderr.str()
    assert secret not in output and "token ***" in output
    forms = (secret, "canary-t&amp;k&lt;n&quot;9", 'canary-t&k<n\\"9')
    for path in (pytester.path / "reports").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(form in text for form in forms), path
