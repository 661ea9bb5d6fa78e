"""Redis: the runbooks' cache pages: ping, role and replica link, memory, evictions, hit rate, queues, saves."""

import pytest

pytestmark = [pytest.mark.nightly]


@pytest.mark.smoke
@pytest.mark.p0
def test_redis_answers_ping(redis_target, redis, evidence):
    evidence.record("redis_version", redis.info("server")["redis_version"])
    evidence.within("ping_ms", redis.ping_ms(), redis_target.ping_ms)


@pytest.mark.smoke
@pytest.mark.p1
def test_redis_role_is_expected(redis_target, redis, evidence):
    role = evidence.record("role", redis.role())
    if redis_target.expect_role is None:
        pytest.skip(f"{redis_target.where} sets no expect_role (role is {role})")
    evidence.expect("role", role, "==", redis_target.expect_role)


@pytest.mark.p1
def test_redis_replica_link_is_up(redis_target, redis, evidence):
    if redis.role() != "replica":
        pytest.skip(f"{redis_target.where} is a master: no replica link to judge")
    link = redis.replica_link()
    if evidence.expect("master_link_status", link["master_link_status"], "==", "up"):  # down: no lag to judge
        evidence.within("replica_lag_s", link["master_last_io_seconds_ago"], redis_target.replica_lag_s)


@pytest.mark.p1
def test_redis_memory_within_threshold(redis_target, redis, evidence):
    memory = evidence.record("memory", redis.memory())
    if memory["maxmemory"] == 0:  # a limit that is asked for but not set is said, not passed over
        if redis_target.memory_pct is None:
            pytest.skip(f"{redis_target.where} sets no memory_pct threshold and the server no maxmemory")
        evidence.caution("maxmemory", 0, ">", 0, "no limit set: memory_pct cannot be judged")
        return
    evidence.judge("memory_pct", round(100 * memory["used_memory"] / memory["maxmemory"], 1),
                    redis_target.memory_pct)


@pytest.mark.p1
def test_redis_evictions_within_threshold(redis_target, redis, evidence):
    evidence.record("maxmemory_policy", redis.memory()["maxmemory_policy"])
    evidence.judge("evicted_keys", redis.stats()["evicted_keys"], redis_target.evicted_keys)


@pytest.mark.p2
def test_redis_hit_rate_within_threshold(redis_target, redis, evidence):
    """Over the run's own window when it saw min_lookups lookups, else over the server's lifetime (recorded
    beside it either way): a cache gone cold today is not hidden behind months of good history."""
    rates = redis.hit_rates()
    basis = "window" if rates["window_lookups"] >= redis_target.min_lookups else "lifetime"
    lookups = rates[f"{basis}_lookups"]
    if lookups < redis_target.min_lookups:
        pytest.skip(f"not enough traffic to judge the hit rate on {redis_target.where}: "
                    f"{lookups} lookups < min_lookups {redis_target.min_lookups}")
    evidence.record("lookups", lookups)
    evidence.judge("hit_rate_pct", rates[f"{basis}_hit_rate_pct"], redis_target.hit_rate_pct)
    evidence.record("hit_rate_over", "run window" if basis == "window" else "lifetime")
    for measure in ("window_s", "window_lookups", "lifetime_hit_rate_pct", "lifetime_lookups"):
        evidence.record(measure, rates[measure])


@pytest.mark.smoke
@pytest.mark.p1
def test_redis_queue_within_threshold(redis_target, redis_queue, redis, evidence):
    limit = redis_target.queues.get(redis_queue)
    if limit is None:
        pytest.skip(f"{redis_target.where} has no queue {redis_queue}")
    kind, backlog = redis.queue_length(redis_queue, limit.group)
    evidence.record("type", kind)
    if kind == "none":  # a renamed or mistyped key is not an empty queue
        evidence.caution(f"queue_key[{redis_queue}]", "absent", "==", "present", "key not found")
        return
    measure = f"pending[{redis_queue}/{limit.group}]" if limit.group else f"queue_length[{redis_queue}]"
    evidence.within(measure, backlog, limit)


@pytest.mark.p1
def test_redis_last_save_succeeded(redis, evidence):
    persistence = evidence.record("persistence", redis.persistence())
    evidence.expect("rdb_last_bgsave_status", persistence["rdb_last_bgsave_status"], "==", "ok")
    evidence.expect("aof_last_write_status", persistence["aof_last_write_status"], "==", "ok")


@pytest.mark.p2
def test_redis_last_save_is_recent(redis_target, redis, evidence):
    if redis_target.max_since_save_s is None:
        pytest.skip(f"{redis_target.where} sets no max_since_save_s")
    evidence.expect("since_last_save_s", redis.seconds_since_save(), "<=", redis_target.max_since_save_s)


@pytest.mark.p2
def test_redis_clients_within_threshold(redis_target, redis, evidence):
    evidence.within("connected_clients", redis.connected_clients(), redis_target.connected_clients)
    evidence.within("rejected_connections", redis.stats()["rejected_connections"], redis_target.rejected_connections)
