"""report.html as a person sees it: a failing nightly-style run, opened in headless Chromium at 1280 px.

The page measures itself (tests/chromium.py): nothing may be wider than the window. The checks table is
plain HTML from the records: failures and warnings first, each failed measurement once, skipped checks
one line per reason, and every check's outcome and evidence still in the page.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from chromium import chromium, measure, screenshot
from conftest import read_results

ENV = """\
tier: staging
severity: p2
http:
  api: {url: "http://127.0.0.1:9/"}
  payments-gateway-internal-eu-west: {url: "http://127.0.0.1:9/payments/v2/very/long/path", severity: p1}
"""

INI = """\
[pytest]
opsproof_env = nightly-unit
markers =
    nightly: n
    p0: p0
    p1: p1
    p2: p2
"""

# A bad night: long queue names, a long unbroken value, a warning, captured output, and many checks of
# kinds and features this environment does not configure.
CHECKS = """
import pytest
from opsproof.thresholds import Ceiling

FEATURES = [f"feature_{i:02d}" for i in range(30)]


@pytest.mark.p1
def test_queues_drain(http_target, evidence):
    for name, length in {"emails": 3, "payouts-settlement-batch-reconciliation": 9000, "refunds": 7,
                         "webhooks-outbound-merchant-notifications": 12000}.items():
        evidence.expect(f"queue_length[{name}]", length, "<=", 5000)


@pytest.mark.p1
def test_certificate_chain(http_target, evidence):
    print("chain as served: " + "MIIF" + "A" * 300)
    evidence.expect("tls_chain_fingerprint", "sha256:" + "9f" * 64, "==", "sha256:" + "0a" * 64)


@pytest.mark.p2
def test_latency(http_target, evidence):
    evidence.within("p95_latency_ms", 700.0, Ceiling(warn=500, crit=2000))


def test_health(http_target, evidence):
    evidence.expect("status_code", 200, "==", 200)


@pytest.mark.parametrize("feature", FEATURES)
def test_feature(http_target, feature):
    pytest.skip(f"{http_target.where} has no {feature} expectation")


def test_redis_memory(redis_target):
    pass


def test_postgres_replication_lag(postgres_target):
    pass
"""


def make_project(pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", pytest=INI)
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "nightly-unit.yaml").write_text(ENV)
    pytester.makepyfile(test_checks=textwrap.dedent(CHECKS))


@pytest.fixture
def page(pytester: pytest.Pytester):
    make_project(pytester)
    result = pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly")
    assert result.ret == 1
    (found,) = list((pytester.path / "reports").glob("*/*/report.html"))
    (results,) = list((pytester.path / "reports").glob("*/*/results.json"))
    return found, read_results(results)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", fragment)))


def test_each_failed_measurement_once_failures_first_and_skips_one_line_per_reason(page):
    path, results = page
    text = path.read_text()
    table = text.split('<section id="checks">')[1].split("</section>")[0]
    rows = re.findall(r'<tr class="([a-z]+)" data-check="([^"]*)">(.*?)</tr>', table, re.S)
    outcomes = [outcome for outcome, _, _ in rows]
    assert outcomes == sorted(outcomes, key=["failed", "warned", "passed"].index)  # failures, then warnings on top
    assert len(rows) == 8  # 4 measuring checks x 2 targets; no skipped check is a row
    cells = {html.unescape(check): _text(re.search(r'<div class="lines">(.*?)</div>', row).group(1))
             for _, check, row in rows}
    queues = cells["test_checks.py::test_queues_drain[api]"]
    for failed in ("queue_length[payouts-settlement-batch-reconciliation] (9000) <= 5000 on http.api",
                   "queue_length[webhooks-outbound-merchant-notifications] (12000) <= 5000 on http.api"):
        assert queues.count(failed.split(" <= ")[0]) == 1  # once, as its evidence line, never again with [crit]
        assert failed in queues
    assert "[crit]" not in queues and "queue_length[emails] (3) <= 5000" in queues
    (queues_row,) = [row for _, check, row in rows if check == "test_checks.py::test_queues_drain[api]"]
    assert _text(queues_row).count("(9000)") == 1  # and not again below the row, as pytest's failure line
    assert cells["test_checks.py::test_latency[api]"] == "p95_latency_ms (700.0) <= 500 on http.api (warn)"
    skipped = text.split('<table id="skipped">')[1].split("</table>")[0]
    lines = re.findall(r'<td class="col-reason">(.*?)</td><td class="col-count">(\d+)</td>', skipped)
    assert ("each of http.api, http.payments-gateway-internal-eu-west has no feature_00 expectation",
            "2") in [(html.unescape(reason), count) for reason, count in lines]
    assert ("no redis targets in environment nightly-unit", "1") in lines
    assert len(lines) == 32  # 30 features + redis + postgres, not 62 rows
    for record in results["checks"]:  # nothing lost: every check, its outcome and evidence are in the page
        if record["outcome"] != "skipped":
            assert html.escape(record["message"]) in table and html.escape(record["id"]) in table
            continue
        (line,) = [_text(row) for row in re.findall(r'<tr class="skipped">(.*?)</tr>', skipped)
                   if record["id"] in _text(re.search(r'<td class="ids">(.*?)</td>', row).group(1)).split(", ")]
        where = record["where"] or ""  # the reason is said once for the targets it names
        parts = record["message"].split(where) if where else [record["message"]]
        assert all(part in line for part in parts) and where in line
    assert "chain as served: MIIF" in text  # captured output, kept under the row


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/setup.sh installs it)")
def test_failing_nightly_report_fits_a_1280_px_window_in_chromium(page, tmp_path):
    path, _ = page
    measured = measure(path, width=1280, timeout_s=120)
    assert measured["scroll_width"] <= measured["inner_width"] == 1280, measured["widest"]
    shot = screenshot(path, tmp_path / "report-1280.png", width=1280, timeout_s=120)
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one
    if os.environ.get("OPSPROOF_SCREENSHOT_DIR"):  # to look at it: the screenshot is kept there
        shutil.copy(shot, Path(os.environ["OPSPROOF_SCREENSHOT_DIR"]) / "report-1280.png")


def test_what_is_not_a_check_stays_in_pytest_htmls_table(pytester):
    """A collection error is no check record: pytest-html's own table keeps it (shown only when not empty)."""
    make_project(pytester)
    pytester.makepyfile(test_broken="import no_such_module_here\n")
    pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly")
    (found,) = list((pytester.path / "reports").glob("*/*/report.html"))
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="([^"]*)"', found.read_text()).group(1)))
    assert list(blob["tests"]) == ["test_broken.py"]  # the checks are in the plain tables, not here
    assert "no_such_module_here" in blob["tests"]["test_broken.py"][0]["log"]
