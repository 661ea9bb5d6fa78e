"""Redis probe: read commands only (PING, INFO, TIME, LASTSAVE, TYPE, LLEN, ZCARD, XLEN, XPENDING), every call bounded.

Never KEYS, never FLUSH: a check on a production cache must not become its incident.

>>> cache = RedisProbe("redis://127.0.0.1:6379/0", password=None, timeout_s=2)   # doctest: +SKIP
>>> cache.ping_ms(), cache.info("server")["redis_version"]                        # doctest: +SKIP
(0.2, '7.0.15')
>>> cache.role(), cache.hit_rate()                                                # doctest: +SKIP
('master', (80.0, 400))
>>> cache.hit_rates()["window_hit_rate_pct"]                                      # doctest: +SKIP
64.3
>>> cache.queue_length("queues:default")                                          # doctest: +SKIP
('list', 12)
"""

from __future__ import annotations

import time

from opsproof.deadline import cut_off_after
from opsproof.errors import ProbeError, first_line


class RedisProbe:
    def __init__(self, url: str, password: str | None = None, timeout_s: float = 3.0):
        self._url = url
        self._password = password
        self.timeout_s = timeout_s
        self._client = None
        self._window_start: tuple | None = None  # (monotonic, hits, misses) when opsproof first reached the server

    def _redis(self):
        if self._client is None:
            import redis  # imported lazily: ~190 ms, only when an environment has Redis targets
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # no client retries: redis-py 8 retries 10 times by default, multiplying every timeout
            kwargs = {"socket_timeout": self.timeout_s, "socket_connect_timeout": self.timeout_s,
                      "decode_responses": True, "retry": Retry(NoBackoff(), 0)}
            if self._password is not None:
                kwargs["password"] = self._password
            self._client = redis.Redis.from_url(self._url, **kwargs)
        return self._client

    def _call(self, command: str, *args):
        """One bounded command; the first also reads the keyspace counters, where the run's window starts."""
        result = self._execute(command, *args)
        if self._window_start is None:
            self._window_start = ()  # being taken: the INFO below must not start another
            stats = self._execute("INFO", "stats")
            self._window_start = (time.monotonic(), stats["keyspace_hits"], stats["keyspace_misses"])
        return result

    def _execute(self, command: str, *args):
        import redis

        client = self._redis()
        expired = None
        try:
            # socket_timeout bounds each read: a server answering a byte every 0.5 s is cut off here instead
            with cut_off_after(self.timeout_s, client.connection_pool.disconnect) as expired:
                return client.execute_command(command, *args)
        except Exception as exc:
            if not (expired is not None and expired.is_set() or isinstance(exc, redis.RedisError)):
                raise
            if expired is not None and expired.is_set() or isinstance(exc, redis.TimeoutError):
                raise ProbeError(f"{command}: no complete answer within {self.timeout_s:g} s",
                                 unreachable=True) from None
            if isinstance(exc, redis.ConnectionError):
                raise ProbeError(f"{command}: {first_line(exc)}", unreachable=True) from None
            raise ProbeError(f"{command}: {first_line(exc)}") from None

    def ping_ms(self) -> float:
        started = time.perf_counter()
        self._call("PING")
        return (time.perf_counter() - started) * 1000

    def info(self, section: str = "default") -> dict:
        return self._call("INFO", section)

    def role(self) -> str:
        """``master`` or ``replica`` (INFO says ``slave``)."""
        role = self.info("replication")["role"]
        return "replica" if role == "slave" else role

    def replica_link(self) -> dict:
        """On a replica: the link to its master and seconds since it last heard from it."""
        replication = self.info("replication")
        return {"master_link_status": replication.get("master_link_status", "down"),
                "master_last_io_seconds_ago": replication.get("master_last_io_seconds_ago", -1),
                "master_sync_in_progress": replication.get("master_sync_in_progress", 0)}

    def memory(self) -> dict:
        memory = self.info("memory")
        return {key: memory[key] for key in ("used_memory", "maxmemory", "maxmemory_policy")}

    def stats(self) -> dict:
        """Counters since the server started: evictions, lookups, refused connections."""
        stats = self.info("stats")
        return {key: stats[key] for key in ("evicted_keys", "keyspace_hits", "keyspace_misses",
                                            "rejected_connections")}

    def hit_rate(self) -> tuple[float, int]:
        """(keyspace hit rate in %, lookups it is based on)."""
        stats = self.stats()
        lookups = stats["keyspace_hits"] + stats["keyspace_misses"]
        return (round(100 * stats["keyspace_hits"] / lookups, 1) if lookups else 0.0), lookups

    def hit_rates(self) -> dict:
        """The keyspace hit rate over this run's window (since opsproof first reached the server: two INFO
        reads) and over the server's lifetime, each with the lookups it is based on. A window whose counters
        went back (a restart, CONFIG RESETSTAT) has no rate."""
        stats = self.stats()
        hits, misses = stats["keyspace_hits"], stats["keyspace_misses"]
        started, hits_before, misses_before = self._window_start or (time.monotonic(), hits, misses)
        window_hits, window_misses = hits - hits_before, misses - misses_before
        counted = window_hits >= 0 and window_misses >= 0
        return {"window_hit_rate_pct": _rate(window_hits, window_misses) if counted else None,
                "window_lookups": window_hits + window_misses if counted else 0,
                "window_s": round(time.monotonic() - started, 1),
                "lifetime_hit_rate_pct": _rate(hits, misses), "lifetime_lookups": hits + misses}

    def connected_clients(self) -> int:
        return self.info("clients")["connected_clients"]

    def persistence(self) -> dict:
        persistence = self.info("persistence")
        return {key: persistence.get(key) for key in ("rdb_last_bgsave_status", "aof_enabled",
                                                      "aof_last_write_status", "rdb_changes_since_last_save")}

    def seconds_since_save(self) -> int:
        """Server clock (TIME) minus LASTSAVE: no trust in this machine's clock."""
        now_s = int(self._call("TIME")[0])
        last = self._call("LASTSAVE")  # redis-py parses it into a local datetime
        return now_s - int(last.timestamp() if hasattr(last, "timestamp") else last)

    def queue_length(self, key: str, group: str | None = None) -> tuple[str, int]:
        """(type, backlog): list or sorted-set length, stream length or its group's pending entries;
        ("none", 0) for a key that does not exist (the check says so rather than count it an empty queue)."""
        kind = self._call("TYPE", key)
        if kind == "none":
            return kind, 0
        if group is not None:
            if kind != "stream":
                raise ProbeError(f"{key} is a {kind}, not a stream: it has no consumer group {group}")
            summary = self._call("XPENDING", key, group)  # redis-py parses the summary into a dict
            return kind, int(summary["pending"] if isinstance(summary, dict) else summary[0])
        lengths = {"list": "LLEN", "zset": "ZCARD", "stream": "XLEN"}
        if kind not in lengths:
            raise ProbeError(f"{key} is a {kind}: a queue is a list, sorted set or stream")
        return kind, int(self._call(lengths[kind], key))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _rate(hits: int, misses: int) -> float:
    return round(100 * hits / (hits + misses), 1) if hits + misses else 0.0
