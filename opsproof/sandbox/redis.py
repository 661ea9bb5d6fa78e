"""A throwaway Redis on a free loopback port, password-protected, seeded with a cache and a queue."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from opsproof.sandbox.processes import require_binary, wait_for_port

QUEUE = "queues:default"
QUEUE_LENGTH = 12


def start(state_dir: Path, port: int, password: str) -> int:
    """Start redis-server in the foreground of its own session; returns its pid."""
    data_dir = state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "redis.conf"
    # the password goes in a 0600 config file, not on the command line where ps would show it
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nrequirepass {password}\ndir {data_dir}\ndbfilename dump.rdb\n"
        f"save \"\"\nappendonly no\nmaxmemory 64mb\nmaxmemory-policy allkeys-lru\nlogfile {data_dir / 'redis.log'}\ndaemonize no\n"
    )
    config.chmod(0o600)
    binary = require_binary("redis-server", "redis-server")
    process = subprocess.Popen(
        [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_for_port(port, 15, "redis-server", process)
    return process.pid


def seed(port: int, password: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
    with client:
        pipe = client.pipeline()
        for n in range(200):
            pipe.set(f"cache:wallet:{n}", f'{{"id": {n}, "balance": "{n * 10}.00"}}', ex=3600)
        pipe.delete(QUEUE)
        pipe.rpush(QUEUE, *[f'{{"job": "settle", "batch": {n}}}' for n in range(QUEUE_LENGTH)])
        pipe.execute()
        for n in range(400):  # traffic, so the keyspace hit rate means something
            client.get(f"cache:wallet:{n % 250}")
        client.save()


def component(box) -> None:
    """Sandbox component: a password-protected Redis with a cache, a queue and some traffic."""
    from opsproof.sandbox.processes import free_port

    password, port = secrets.token_urlsafe(18), free_port()
    box.variables.update(SANDBOX_REDIS_PASSWORD=password, SANDBOX_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    box.add_process("redis", start(Path(box.state_dir), port, password), port)
    seed(port, password)
