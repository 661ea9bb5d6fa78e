"""The record: one outcome-merge rule, measurement evidence lines pinned, the shipped schema equals the models'."""

from __future__ import annotations

import pytest

from opsproof.outcomes import Outcome
from opsproof.record import DrillRecord, Measurement, described, merge
from opsproof.record.results import schema, shipped_schema
from opsproof.thresholds import Ceiling, Floor


@pytest.mark.parametrize(("phases", "expected"), [
    ([("passed", ""), ("passed", ""), ("passed", "")], ("passed", "")),
    ([("skipped", "no postgres targets")], ("skipped", "no postgres targets")),
    ([("passed", ""), ("warned", "p95 (700.0) <= 500 on http.api (warn)"), ("passed", "")],
     ("warned", "p95 (700.0) <= 500 on http.api (warn)")),
    ([("passed", ""), ("skipped", "sets no threshold"), ("passed", "")], ("skipped", "sets no threshold")),
    ([("passed", ""), ("failed", "a (1) == 0 on x"), ("error", "teardown: ConnectionError")],
     ("error", "teardown: ConnectionError")),
    ([("skipped", "unreachable"), ("error", "could not measure")], ("error", "could not measure")),
    ([("error", "first cause"), ("error", "second")], ("error", "first cause")),
])
def test_one_rule_merges_phases_and_attempts(phases, expected):
    outcome, message = merge(phases)
    assert (outcome, message) == (Outcome(expected[0]), expected[1])


def test_measurements_keep_the_keys_they_were_given_and_read_as_evidence():
    compared = Measurement.compared("tls_chain_error", "self-signed certificate", "==", None)
    assert compared.to_dict() == {"measure": "tls_chain_error", "value": "self-signed certificate", "op": "==",
                                  "limit": None, "verdict": "crit"}
    assert compared.line("http.api") == "tls_chain_error ('self-signed certificate') == None on http.api"
    assert compared.line("backups.x", "first 00000001") == (
        "tls_chain_error ('self-signed certificate') == None on backups.x: first 00000001")
    crit = Measurement.judged("response_time_ms", 2310.0, Ceiling(warn=500, crit=2000))
    assert crit.line("http.api") == "response_time_ms (2310.0) <= 2000 on http.api (crit)"
    assert crit.describe() == "response_time_ms (2310.0) <= warn 500 / crit 2000 [crit]"
    warn = Measurement.judged("hit_rate_pct", 60.0, Floor(warn=70, crit=40))
    assert (warn.verdict, warn.line("redis.cache")) == ("warn", "hit_rate_pct (60.0) >= 70 on redis.cache (warn)")
    recorded = Measurement.recorded("component_ready", True, component="database")
    assert recorded.to_dict() == {"measure": "component_ready", "value": True, "component": "database"}
    assert recorded.ok and recorded.describe() == "component_ready (true) component='database'"
    assert Measurement.recorded("at", object).value.startswith("<class")  # anything else travels as text


def test_a_failed_measurement_is_described_once():
    """The message carries a failed measurement's evidence line; the description list does not repeat it."""
    measurements = [Measurement.compared("a", 1, "==", 0), Measurement.compared("b", 0, "==", 0),
                    Measurement.judged("c", 9.0, Ceiling(warn=5)), Measurement.compared("d", 2, "==", 0)]
    message = "a (1) == 0 on x; c (9.0) <= 5 on x (warn)"
    assert described(measurements, message) == ["b (0) == 0", "d (2) == 0 [crit]"]


def test_drill_record_names_what_was_drilled():
    assert DrillRecord(kind="restore", backup_set="nightly").subject == "backup set nightly"
    assert DrillRecord(kind="dr", scenario="outage", backup_set="/var/backups").subject == "scenario outage"


def test_shipped_schema_is_the_one_the_models_generate():
    """Regenerate with ``python -m opsproof.record.results > opsproof/record/results.schema.json``."""
    assert shipped_schema() == schema()
    assert shipped_schema()["properties"]["schema_version"]["default"] == 2


def test_a_reports_phase_is_read_again_once_its_dict_changes():
    """Phase.of keeps the last report's phase; the collector adds the waiver to the dict, which must show."""
    from types import SimpleNamespace

    from opsproof.record import Phase

    data = Phase(phase="call", outcome=Outcome.FAILED, message="x (1) == 0 on tcp.a", check="test_x",
                 module="test_x", severity="p1").to_dict()
    report = SimpleNamespace(opsproof=data)
    first = Phase.of(report)
    assert Phase.of(report) is first and first.waiver is None
    data["waiver"] = {"check": "test_x", "justification": "j", "approver": "a", "ticket": "T-1",
                      "created": "2026-01-01", "expires": "2026-02-01"}
    assert Phase.of(report).waiver.ticket == "T-1"
    other = SimpleNamespace(opsproof={**data, "message": "y (2) == 0 on tcp.b"})
    assert Phase.of(other).message == "y (2) == 0 on tcp.b" and Phase.of(report).message == "x (1) == 0 on tcp.a"
    assert Phase.of(SimpleNamespace()) is None
