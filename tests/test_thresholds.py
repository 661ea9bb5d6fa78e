"""Thresholds: direction belongs to the quantity, and the evidence message format is pinned."""

import pytest
from pydantic import ValidationError

from opsproof.thresholds import Ceiling, Comparison, Floor, PercentCeiling, Verdict


@pytest.mark.parametrize(
    ("threshold", "value", "verdict"),
    [
        (Ceiling(warn=500, crit=2000), 120.0, Verdict.OK),
        (Ceiling(warn=500, crit=2000), 500.0, Verdict.OK),
        (Ceiling(warn=500, crit=2000), 700.0, Verdict.WARN),
        (Ceiling(warn=500, crit=2000), 2310.0, Verdict.CRIT),
        (Floor(warn=70, crit=40), 82.0, Verdict.OK),
        (Floor(warn=70, crit=40), 55.0, Verdict.WARN),
        (Floor(warn=70, crit=40), 12.0, Verdict.CRIT),
        (Ceiling(crit=95), 96.0, Verdict.CRIT),
        (Ceiling(warn=80), 96.0, Verdict.WARN),
    ],
)
def test_threshold_judges_value(threshold, value, verdict):
    assert threshold.judge(value) is verdict


@pytest.mark.parametrize(
    ("model", "values", "problem"),
    [
        (Ceiling, {"warn": 2000, "crit": 500}, "warn (2000) must not be above crit (500): higher is worse"),
        (Floor, {"warn": 40, "crit": 70}, "warn (40) must not be below crit (70): lower is worse"),
        (PercentCeiling, {"warn": 80, "crit": 120}, "crit (120) is a percentage and must be within 0..100"),
        (Ceiling, {}, "give warn, crit or both"),
        (Ceiling, {"warn": 1, "crit": 2, "max": 3}, "Extra inputs are not permitted"),
    ],
)
def test_impossible_threshold_is_rejected(model, values, problem):
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        model(**values)


def test_comparison_message_is_evidence():
    comparison = Comparison("connections_pct", 97.0, "<=", 95.0, "postgres.main")
    assert not comparison.holds
    assert str(comparison) == "connections_pct (97.0) <= 95 on postgres.main"


def test_comparison_of_text_quotes_it():
    assert str(Comparison("status", "degraded", "==", "healthy", "http.api")) == (
        "status ('degraded') == 'healthy' on http.api"
    )
