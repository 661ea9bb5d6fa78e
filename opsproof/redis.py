"""Redis probe: read commands only (PING, INFO, LLEN...), every call bounded by a socket timeout.

>>> cache = RedisProbe("redis://127.0.0.1:6379/0", password=None, timeout_s=2)   # doctest: +SKIP
>>> cache.ping_ms(), cache.info("server")["redis_version"]                        # doctest: +SKIP
(0.2, '7.0.15')
"""

from __future__ import annotations

import time

from opsproof.errors import ProbeError, first_line


class RedisProbe:
    def __init__(self, url: str, password: str | None = None, timeout_s: float = 3.0):
        self._url = url
        self._password = password
        self.timeout_s = timeout_s
        self._client = None

    def _redis(self):
        if self._client is None:
            import redis  # imported lazily: ~190 ms, only when an environment has Redis targets

            kwargs = {"socket_timeout": self.timeout_s, "socket_connect_timeout": self.timeout_s}
            if self._password is not None:
                kwargs["password"] = self._password
            self._client = redis.Redis.from_url(self._url, **kwargs)
        return self._client

    def _call(self, command: str, *args):
        import redis

        try:
            return self._redis().execute_command(command, *args)
        except redis.TimeoutError:
            raise ProbeError(f"{command}: no answer within {self.timeout_s:g} s", unreachable=True) from None
        except redis.ConnectionError as exc:
            raise ProbeError(f"{command}: {first_line(exc)}", unreachable=True) from None
        except redis.RedisError as exc:
            raise ProbeError(f"{command}: {first_line(exc)}") from None

    def ping_ms(self) -> float:
        started = time.perf_counter()
        self._call("PING")
        return (time.perf_counter() - started) * 1000

    def info(self, section: str = "default") -> dict:
        return self._call("INFO", section)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
