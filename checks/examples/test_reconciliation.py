"""FinAegis reconciliation ("check for discrepancies"): ledger and bank agree, account by account.

A check of your own: the SQL is the runbook's, the limits come from the environment's ``custom:``.
"""

import pytest

pytestmark = [pytest.mark.nightly]

MISMATCHES = """
    SELECT user_id, expected::float, actual::float FROM reconciliation_logs
    WHERE discrepancy <> 0 AND created_at > now() - make_interval(secs => %s)
    ORDER BY abs(discrepancy) DESC, created_at DESC
"""


@pytest.mark.smoke
@pytest.mark.p1
def test_reconciliation_mismatches_within_limit(postgres_target, postgres, custom, evidence):
    limits = custom("reconciliation_mismatches", "window")
    rows = postgres.rows(MISMATCHES, (limits.window_s,), label=limits.name)
    evidence.record("worst_mismatches", [{"user_id": u, "expected": e, "actual": a} for u, e, a in rows[:5]])
    evidence.judge(limits.name, len(rows), limits.threshold)
