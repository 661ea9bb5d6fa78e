"""Redis: the runbook's `redis-cli ping`, answered within the target's timeout."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p0
def test_redis_answers_ping(redis, evidence):
    evidence.record("redis_version", redis.info("server")["redis_version"])
    evidence.record("ping_ms", redis.ping_ms())
