"""Outcomes, severities and the gate: which results block a deploy. Pure functions, no pytest."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Outcome(str, enum.Enum):
    PASSED = "passed"
    WARNED = "warned"  # between warn and crit: passes, but is shown and counted
    FAILED = "failed"  # measured, and the measurement crossed its limit
    ERROR = "error"  # could not measure (unreachable, timeout): gates like a failure
    SKIPPED = "skipped"  # not configured here, or its target is already known unreachable
    WAIVED = "waived"  # a known failure with justification, approver and expiry


SEVERITIES = ("p0", "p1", "p2", "p3")
DEFAULT_GATE = "p1"
DEFAULT_SEVERITY = "p2"  # a check with no marker, in an environment that sets no severity

# When phases of one check disagree, the worst wins.
_RANK = {
    Outcome.SKIPPED: 0,
    Outcome.PASSED: 1,
    Outcome.WARNED: 2,
    Outcome.WAIVED: 3,
    Outcome.FAILED: 4,
    Outcome.ERROR: 5,
}


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=_RANK.__getitem__, default=Outcome.PASSED)


def within_gate(severity: str, gate: str) -> bool:
    """``p1`` is within gate ``p1``, ``p2`` is not: lower numbers are more severe."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(gate)


def is_gating(outcome: Outcome, severity: str, gate: str = DEFAULT_GATE, fail_on_warn: bool = False) -> bool:
    blocking = {Outcome.FAILED, Outcome.ERROR} | ({Outcome.WARNED} if fail_on_warn else set())
    return outcome in blocking and within_gate(severity, gate)


def verdict_line(records: list, gate: str, fail_on_warn: bool, interrupted: bool = False,
                 collected: int | None = None) -> str:
    """One line a CI log or an on-call engineer reads first (``records``: opsproof.record.CheckRecord).

    An interrupted run never reads as PASS: what did not run was not checked."""
    counts = {o.value: 0 for o in Outcome}
    for record in records:
        counts[record.outcome] += 1
    gating = [r for r in records if r.gating]
    shown = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    rule = f"gate {gate}{' + warnings' if fail_on_warn else ''}"
    if interrupted:
        of = f" of {collected}" if collected is not None else ""
        blocking = f"; {len(gating)} gating, first: {gating[0].id}" if gating else ""
        return f"INTERRUPTED ({rule}): {len(records)}{of} checks finished [{shown or 'none'}]{blocking}"
    if gating:
        first = gating[0]
        return f"FAIL ({rule}): {len(gating)} gating of {len(records)} checks [{shown}]; first: {first.id}"
    return f"PASS ({rule}): {len(records)} checks [{shown or 'none'}]"
