"""Redis checks against the sandbox and against scratch redis-servers: pass when healthy, fail on real faults."""

from __future__ import annotations

import time

import pytest
import redis

from conftest import sandbox_environment
from opsproof.sandbox import redis as sandbox_redis
from opsproof.sandbox.processes import free_port, stop_pid
from opsproof.thresholds import show_value

HEALTHY = {"ping_ms": {"warn": 100, "crit": 1000}, "expect_role": "master", "memory_pct": {"warn": 80, "crit": 95},
           "evicted_keys": {"warn": 1, "crit": 1000}, "hit_rate_pct": {"warn": 70, "crit": 40},
           "queues": {"queues:default": {"warn": 1000, "crit": 5000}}, "max_since_save_s": 3600,
           "connected_clients": {"warn": 500, "crit": 900}, "rejected_connections": {"crit": 0}}


def redis_environment(sandbox, url=None, **settings) -> dict:
    environment = sandbox_environment(sandbox)
    environment["redis"]["cache"].update(settings, **({"url": url} if url else {}))
    return environment


class Scratch:
    """A redis-server of the test's own, for faults the shared sandbox must not suffer."""

    def __init__(self, state_dir, password: str):
        self.port, self.state_dir = free_port(), state_dir
        self.pid = sandbox_redis.start(state_dir, self.port, password)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, password=password, socket_timeout=5, decode_responses=True)


@pytest.fixture
def scratch(tmp_path, sandbox):
    """Same password as the sandbox, so the environment's ${TEST_REDIS_PASSWORD} opens it."""
    server = Scratch(tmp_path, sandbox.redis_password)
    yield server
    server.client.close()
    stop_pid(server.pid)


def test_every_redis_check_passes_on_the_healthy_sandbox(sandbox, write_env, run_checks):
    run = run_checks(write_env(redis_environment(sandbox, **HEALTHY)), "-k", "redis")
    assert run.ret == 0, run.output
    outcomes = {r["check"]: r["outcome"] for r in run.results["checks"] if r["module"] == "test_redis"}
    assert outcomes.pop("test_redis_replica_link_is_up") == "skipped"
    assert set(outcomes.values()) == {"passed"} and len(outcomes) == 9
    hit_rate = run.record("test_redis_hit_rate_within_threshold")["measurements"]
    # the seed's 400 lookups hit 87.5 %; the demo API adds its own
    assert hit_rate[0]["measure"] == "lookups" and hit_rate[0]["value"] >= 400 and hit_rate[1]["value"] >= 70
    assert run.record("test_redis_queue_within_threshold")["measurements"][1]["value"] == sandbox_redis.QUEUE_LENGTH


def test_unexpected_role_fails(sandbox, write_env, run_checks):
    run = run_checks(write_env(redis_environment(sandbox, expect_role="replica")), "-k", "redis and (role)")
    assert run.record("test_redis_role_is_expected")["message"] == "role ('master') == 'replica' on redis.cache"


@pytest.fixture
def backlog(sandbox):
    """5100 jobs more on the sandbox's default queue (workers stopped); trimmed back afterwards."""
    client = redis.Redis.from_url(sandbox.redis_url, password=sandbox.redis_password, socket_timeout=5)
    client.rpush(sandbox_redis.QUEUE, *[f'{{"job": "stuck", "n": {n}}}' for n in range(5100)])
    yield
    client.ltrim(sandbox_redis.QUEUE, 0, sandbox_redis.QUEUE_LENGTH - 1)
    client.close()


def test_queue_backlog_past_crit_fails(sandbox, write_env, run_checks, backlog):
    run = run_checks(write_env(redis_environment(sandbox, **HEALTHY)), "-k", "redis and (queue)")
    assert run.ret == 1
    assert run.record("test_redis_queue_within_threshold")["message"] == (
        "queue_length[queues:default] (5112) <= 5000 on redis.cache (crit)")


def test_stream_group_pending_past_crit_fails(sandbox, write_env, run_checks, scratch):
    for n in range(3):
        scratch.client.xadd("events", {"n": n})
    scratch.client.xgroup_create("events", "settlers", id="0")
    scratch.client.xreadgroup("settlers", "worker-1", {"events": ">"})  # read, never acknowledged
    queues = {"events": {"group": "settlers", "warn": 1, "crit": 2}}
    run = run_checks(write_env(redis_environment(sandbox, scratch.url, queues=queues)), "-k", "redis and (queue)")
    assert run.record("test_redis_queue_within_threshold")["message"] == (
        "pending[events/settlers] (3) <= 2 on redis.cache (crit)")


def test_maxmemory_reached_fails_memory_and_evictions(sandbox, write_env, run_checks, scratch):
    scratch.client.config_set("maxmemory", "3mb")
    scratch.client.config_set("maxmemory-policy", "allkeys-lru")
    for batch in range(40):
        pipe = scratch.client.pipeline(transaction=False)
        for n in range(100):
            pipe.set(f"cache:blob:{batch}:{n}", "x" * 1024)
        pipe.execute()
    settings = {"memory_pct": {"warn": 50, "crit": 80}, "evicted_keys": {"warn": 1, "crit": 100}}
    run = run_checks(write_env(redis_environment(sandbox, scratch.url, **settings)),
                     "-k", "redis and (memory or evictions)")
    memory = run.record("test_redis_memory_within_threshold")
    pct = memory["measurements"][1]["value"]
    assert run.ret == 1 and pct > 80
    assert memory["message"] == f"memory_pct ({show_value(pct)}) <= 80 on redis.cache (crit)"
    evictions = run.record("test_redis_evictions_within_threshold")
    evicted = evictions["measurements"][1]["value"]
    assert evicted > 1000 and evictions["measurements"][0]["value"] == "allkeys-lru"
    assert evictions["message"] == f"evicted_keys ({evicted}) <= 100 on redis.cache (crit)"


def test_misses_fail_hit_rate_and_little_traffic_skips(sandbox, write_env, run_checks, scratch):
    settings = {"hit_rate_pct": {"warn": 70, "crit": 40}, "min_lookups": 100}
    path = write_env(redis_environment(sandbox, scratch.url, **settings))
    for n in range(10):
        scratch.client.set(f"k{n}", n)
        scratch.client.get(f"k{n}")
    quiet = run_checks(path, "-k", "redis and (hit_rate)")
    assert quiet.record("test_redis_hit_rate_within_threshold")["message"] == (
        "not enough traffic to judge the hit rate on redis.cache: 10 lookups < min_lookups 100")
    for n in range(140):
        scratch.client.get(f"missing:{n}")
    busy = run_checks(path, "-k", "redis and (hit_rate)")
    assert busy.record("test_redis_hit_rate_within_threshold")["message"] == (
        "hit_rate_pct (6.7) >= 40 on redis.cache (crit)")


def test_failed_bgsave_and_old_save_fail(sandbox, write_env, run_checks, scratch):
    (scratch.state_dir / "redis" / "dump.rdb").mkdir()  # the rename onto the dump fails, as on a full disk
    scratch.client.bgsave()
    deadline = time.monotonic() + 10
    while scratch.client.info("persistence")["rdb_bgsave_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(max(0.0, scratch.client.lastsave().timestamp() + 2.2 - time.time()))  # no save since start-up
    run = run_checks(write_env(redis_environment(sandbox, scratch.url, max_since_save_s=1)), "-k", "redis and (save)")
    assert run.record("test_redis_last_save_succeeded")["message"] == (
        "rdb_last_bgsave_status ('err') == 'ok' on redis.cache")
    recent = run.record("test_redis_last_save_is_recent")
    since_s = recent["measurements"][0]["value"]
    assert since_s >= 2 and recent["message"] == f"since_last_save_s ({since_s}) <= 1 on redis.cache"


def test_refused_clients_fail(sandbox, write_env, run_checks, scratch):
    scratch.client.config_set("maxclients", "2")
    scratch.client.ping()
    extra = redis.Redis(port=scratch.port, password=sandbox.redis_password, socket_timeout=5)
    extra.ping()
    with pytest.raises(redis.ConnectionError, match="max number of clients reached"):
        redis.Redis(port=scratch.port, password=sandbox.redis_password, socket_timeout=5).ping()
    extra.close()
    settings = {"connected_clients": {"warn": 5, "crit": 10}, "rejected_connections": {"crit": 0}}
    run = run_checks(write_env(redis_environment(sandbox, scratch.url, **settings)), "-k", "redis and (clients)")
    record = run.record("test_redis_clients_within_threshold")
    rejected = record["measurements"][1]["value"]  # redis-py retries a refused connection: one or more
    assert rejected >= 1 and record["message"] == f"rejected_connections ({rejected}) <= 0 on redis.cache (crit)"


def test_replica_link_up_then_down_when_its_master_stops(sandbox, write_env, run_checks, tmp_path):
    master, replica = Scratch(tmp_path / "master", sandbox.redis_password), Scratch(tmp_path / "replica",
                                                                                     sandbox.redis_password)
    try:
        replica.client.config_set("masterauth", sandbox.redis_password)
        replica.client.replicaof("127.0.0.1", master.port)
        deadline = time.monotonic() + 10
        while replica.client.info("replication").get("master_link_status") != "up" and time.monotonic() < deadline:
            time.sleep(0.05)
        path = write_env(redis_environment(sandbox, replica.url, expect_role="replica", replica_lag_s={"crit": 30}))
        up = run_checks(path, "-k", "redis and (role or replica)")
        assert up.ret == 0 and up.record("test_redis_replica_link_is_up")["outcome"] == "passed", up.output
        stop_pid(master.pid)
        down = run_checks(path, "-k", "redis and (role or replica)")
        assert down.record("test_redis_replica_link_is_up")["message"] == (
            "master_link_status ('down') == 'up' on redis.cache")
    finally:
        for server in (master, replica):
            server.client.close()
            stop_pid(server.pid)


# --- silent passes made explicit (issue 18, item 15) -------------------------------------------------------------

def test_a_queue_key_that_does_not_exist_is_warned_not_an_empty_queue(sandbox, write_env, run_checks, scratch):
    queues = {"queues:renamed": {"warn": 10, "crit": 100}}
    run = run_checks(write_env(redis_environment(sandbox, scratch.url, queues=queues)), "-k", "redis and queue")
    record = run.record("test_redis_queue_within_threshold")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert record["message"] == "queue_key[queues:renamed] ('absent') == 'present' on redis.cache: key not found (warn)"
    scratch.client.rpush("queues:renamed", "job")  # the key back: an ordinary pass
    run = run_checks(write_env(redis_environment(sandbox, scratch.url, queues=queues)), "-k", "redis and queue")
    assert run.record("test_redis_queue_within_threshold")["outcome"] == "passed"


def test_memory_pct_without_maxmemory_is_warned_no_limit_set(sandbox, write_env, run_checks, scratch):
    scratch.client.config_set("maxmemory", "0")
    path = write_env(redis_environment(sandbox, scratch.url, memory_pct={"warn": 80, "crit": 95}))
    record = run_checks(path, "-k", "redis and memory").record("test_redis_memory_within_threshold")
    assert (record["outcome"], record["message"]) == (
        "warned", "maxmemory (0) > 0 on redis.cache: no limit set: memory_pct cannot be judged (warn)")
    scratch.client.config_set("maxmemory", "64mb")
    record = run_checks(path, "-k", "redis and memory").record("test_redis_memory_within_threshold")
    assert record["outcome"] == "passed"


def test_hit_rate_is_judged_over_the_runs_window_when_it_has_the_traffic(scratch):
    """Two INFO reads: a lifetime of hits does not hide a cache that misses now."""
    from opsproof.redis import RedisProbe

    scratch.client.set("warm", 1)
    for _ in range(900):
        scratch.client.get("warm")  # a good past: 900 hits
    probe = RedisProbe(scratch.url, scratch.client.connection_pool.connection_kwargs["password"], timeout_s=5)
    try:
        probe.ping_ms()  # the run's window starts when opsproof first reaches the server
        quiet = probe.hit_rates()
        for n in range(300):
            scratch.client.get(f"cold:{n}")  # now every lookup misses
        busy = probe.hit_rates()
    finally:
        probe.close()
    assert (quiet["window_lookups"], quiet["lifetime_hit_rate_pct"]) == (0, 100.0)
    assert (busy["window_lookups"], busy["window_hit_rate_pct"]) == (300, 0.0)
    assert (busy["lifetime_lookups"], busy["lifetime_hit_rate_pct"]) == (1200, 75.0)


def test_hit_rate_check_says_its_basis_and_records_the_lifetime_beside_it(sandbox, write_env, run_checks, scratch):
    scratch.client.set("warm", 1)
    for _ in range(200):
        scratch.client.get("warm")
    path = write_env(redis_environment(sandbox, scratch.url, hit_rate_pct={"warn": 70, "crit": 40}, min_lookups=100))
    record = run_checks(path, "-k", "redis and hit_rate").record("test_redis_hit_rate_within_threshold")
    measured = {m["measure"]: m["value"] for m in record["measurements"]}
    assert record["outcome"] == "passed"  # the run itself looked nothing up: the lifetime is judged, and said so
    assert (measured["hit_rate_over"], measured["hit_rate_pct"], measured["lifetime_lookups"]) == ("lifetime", 100.0,
                                                                                                    200)
    assert measured["window_lookups"] == 0
