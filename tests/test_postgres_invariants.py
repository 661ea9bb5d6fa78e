"""Data-store expectations are validated at load: invariant forms, threshold order, queue limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opsproof.environment.model import Environment

SQL = "SELECT count(*) FROM compliance_alerts WHERE status = 'open'"


def environment(**sections) -> Environment:
    return Environment.model_validate({"name": "staging", "tier": "staging", **sections})


def postgres(**settings) -> dict:
    return {"main": {"dsn": "postgresql://bot@db:5432/app", **settings}}


@pytest.mark.parametrize(
    ("invariant", "bounds", "threshold"),
    [
        ({"sql": SQL, "max": 50}, [("<=", 50)], None),
        ({"sql": SQL, "min": 1, "max": 9}, [("<=", 9), (">=", 1)], None),
        ({"sql": SQL, "warn": 10, "crit": 25}, [], ("Ceiling", "<=")),
        ({"sql": SQL, "warn": 90, "crit": 50, "worse": "lower"}, [], ("Floor", ">=")),
    ],
)
def test_invariant_forms(invariant, bounds, threshold):
    loaded = environment(postgres=postgres(invariants={"open_alerts": invariant})).postgres["main"]
    parsed = loaded.invariants["open_alerts"]
    assert parsed.bounds == bounds
    shape = (type(parsed.threshold).__name__, parsed.threshold.ok_op) if parsed.threshold else None
    assert shape == threshold


@pytest.mark.parametrize(
    ("invariant", "problem"),
    [
        ({"sql": SQL}, "give max, min or warn/crit"),
        ({"sql": SQL, "max": 5, "crit": 9}, "give either max/min or warn/crit, not both"),
        ({"sql": SQL, "warn": 25, "crit": 10}, "warn (25) must not be above crit (10): higher is worse"),
        ({"sql": SQL, "warn": 10, "crit": 25, "worse": "lower"}, "warn (10) must not be below crit (25)"),
        ({"sql": "", "max": 1}, "at least 1 character"),
    ],
)
def test_bad_invariants_are_rejected(invariant, problem):
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        environment(postgres=postgres(invariants={"open_alerts": invariant}))


def test_redis_queue_and_mysql_limits_are_thresholds():
    loaded = environment(
        redis={"cache": {"url": "rediss://cache:6380/0", "hit_rate_pct": {"warn": 70, "crit": 40},
                         "queues": {"events": {"group": "settlers", "crit": 100}}}},
        mysql={"ledger": {"user": "monitor", "port": "3307", "connections_pct": {"warn": 80, "crit": 95}}},
    )
    assert loaded.redis["cache"].queues["events"].group == "settlers"
    assert loaded.mysql["ledger"].port == 3307 and loaded.mysql["ledger"].where == "mysql.ledger"
    with pytest.raises(ValidationError, match=r"warn \(40\) must not be below crit \(70\): lower is worse"):
        environment(redis={"cache": {"url": "redis://c", "hit_rate_pct": {"warn": 40, "crit": 70}}})
    with pytest.raises(ValidationError, match=r"crit \(120\) is a percentage"):
        environment(mysql={"ledger": {"user": "m", "connections_pct": {"crit": 120}}})
