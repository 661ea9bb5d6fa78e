"""The sandbox's demo API: /health, /ready, /metrics and /v1/wallets, backed by its PostgreSQL and Redis.

Faults are injected through ``/_sandbox/faults`` (sandbox only): ``{"health": "degraded"}``,
``{"healthy_requests": 4}`` (healthy for
the next 4 health requests, then degraded), ``{"delay_ms": 3000}``, ``{"status": 500}``, ``{"unready": "migrations"}`` (with ``"unready_requests": 3``
only for the next 3 readiness requests), ``{"missing": "cache"}``, ``{"ready_states": "strings"}``
(components answered as ``"ready"``/``"unready"``), ``{"database": "down"}`` (as /health
sees it), ``{"content_type": "text/html"}``, ``{"paths": {"/v1/wallets": 500}}`` (one path's status);
DELETE clears them. ``POST /_sandbox/database {"dsn": ...}`` repoints it to another database (a failover).
Also served: /old-health (301 to /health), /v1/account (needs
``Bearer $SANDBOX_API_TOKEN`` or basic ``operator``/the token), /status/payments (an external
provider's status page, for dependency probes) and /v1/echo (GET or POST: the request's headers and JSON
body answered back, as APIs that echo a request do; the redaction tests send canaries through it).
Run as ``python -m opsproof.sandbox.api --port N``; connection settings come from the environment
(``SANDBOX_PG_DSN``, ``SANDBOX_PG_PASSWORD``, ``SANDBOX_REDIS_URL``, ``SANDBOX_REDIS_PASSWORD``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

VERSION = "1.4.2"
REGISTRY = CollectorRegistry()
REQUESTS = Counter("http_requests_total", "HTTP requests", ["path", "status"], registry=REGISTRY)
ERRORS = Counter("errors_total", "HTTP error responses", ["status"], registry=REGISTRY)
LATENCY = Histogram("http_request_duration_seconds", "Request latency", ["path"], registry=REGISTRY)
DB_UP = Gauge("database_up", "1 when the database answered the last health probe", registry=REGISTRY)
CACHE_UP = Gauge("cache_up", "1 when the cache answered the last health probe", registry=REGISTRY)


class Backends:
    """One connection each to PostgreSQL and Redis, reopened when lost."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pg = None
        self._redis = None
        self.dsn = os.environ["SANDBOX_PG_DSN"]

    def repoint(self, dsn: str) -> None:
        """Use another database from now on (a failover: the application's configuration changed)."""
        with self._lock:
            if self._pg is not None:
                self._pg.close()
            self._pg, self.dsn = None, dsn

    def database(self) -> bool:
        import psycopg

        with self._lock:
            try:
                if self._pg is None or self._pg.closed:
                    self._pg = psycopg.connect(
                        self.dsn, password=os.environ.get("SANDBOX_PG_PASSWORD"), connect_timeout=2, autocommit=True,
                    )
                self._pg.execute("SELECT 1")
                return True
            except psycopg.Error:
                self._pg = None
                return False

    def wallets(self, limit: int = 20) -> list[dict]:
        with self._lock:
            rows = self._pg.execute(
                "SELECT id, currency, balance::text FROM wallets ORDER BY id LIMIT %s", (limit,)
            ).fetchall()
        return [{"id": r[0], "currency": r[1], "balance": r[2]} for r in rows]

    def cache(self) -> bool:
        import redis

        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(
                    os.environ["SANDBOX_REDIS_URL"], password=os.environ.get("SANDBOX_REDIS_PASSWORD"),
                    socket_timeout=2, socket_connect_timeout=2,
                )
            self._redis.get("cache:wallet:1")
            return True
        except redis.RedisError:
            self._redis = None
            return False


class Faults:
    def __init__(self):
        self.settings: dict = {}


def make_handler(backends: Backends, faults: Faults):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: a kept-alive client's delayed
        # ACK would hold the body back 40 ms per request (Nagle), as no real server does
        server_version = f"opsproof-sandbox/{VERSION}"

        def log_message(self, *args):  # quiet: the sandbox is not a log producer
            pass

        def _send(self, status: int, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", faults.settings.get("content_type", content_type))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            path = self.path.split("?")[0]
            REQUESTS.labels(path, str(status)).inc()
            if status >= 500:
                ERRORS.labels(str(status)).inc()

        def do_GET(self):
            started = time.perf_counter()
            path = self.path.split("?")[0]
            settings = faults.settings
            if settings.get("delay_ms") and path != "/_sandbox/faults":
                time.sleep(settings["delay_ms"] / 1000)
            route = {
                "/health": self._health, "/ready": self._ready, "/metrics": self._metrics,
                "/v1/wallets": self._wallets, "/_sandbox/faults": lambda: self._send(200, settings),
                "/old-health": self._redirect, "/v1/account": self._account,
                "/status/payments": lambda: self._send(200, {"status": "operational"}),
                "/v1/echo": lambda: self._echo(b""),
            }.get(path)
            if path in settings.get("paths", {}):
                self._send(int(settings["paths"][path]), {"error": "injected fault"})
            elif route is None:
                self._send(404, {"error": "not found"})
            else:
                route()
            LATENCY.labels(path).observe(time.perf_counter() - started)

        def _health(self):
            database = backends.database() and faults.settings.get("database") != "down"
            cache = backends.cache()
            DB_UP.set(int(database))
            CACHE_UP.set(int(cache))
            healthy = database and cache and faults.settings.get("health") != "degraded"
            remaining = faults.settings.get("healthy_requests")  # healthy for this many more requests, then degraded
            if remaining is not None:
                healthy = healthy and remaining > 0
                faults.settings["healthy_requests"] = max(0, remaining - 1)
            body = {
                "status": "healthy" if healthy else "degraded",
                "version": VERSION,
                "services": {"database": "connected" if database else "down", "cache": "connected" if cache else "down"},
            }
            self._send(faults.settings.get("status", 200 if healthy else 503), body)

        def _ready(self):
            components = {
                "database": {"ready": backends.database()},
                "cache": {"ready": backends.cache()},
                "migrations": {"ready": True},
            }
            unready = faults.settings.get("unready")
            remaining = faults.settings.get("unready_requests")  # warm-up: unready for this many more requests
            if remaining is not None:
                unready = unready if remaining > 0 else None
                faults.settings["unready_requests"] = max(0, remaining - 1)
            if unready in components:
                components[unready] = {"ready": False, "reason": "injected fault"}
            components.pop(faults.settings.get("missing"), None)
            ready = all(c["ready"] for c in components.values())
            if faults.settings.get("ready_states") == "strings":  # {"redis": "ready"}, as some frameworks answer
                components = {name: "ready" if c["ready"] else "unready" for name, c in components.items()}
            self._send(200 if ready else 503, {"ready": ready, "checks": components})

        def _redirect(self):
            self.send_response(301)
            self.send_header("Location", "/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
            REQUESTS.labels("/old-health", "301").inc()

        def _account(self):
            import base64

            token = os.environ.get("SANDBOX_API_TOKEN") or ""
            basic = base64.b64encode(f"operator:{token}".encode()).decode()
            given = self.headers.get("Authorization", "")
            if token and given in (f"Bearer {token}", f"Basic {basic}"):
                self._send(200, {"account": "operator", "scheme": given.split()[0]})
            else:
                self._send(401, {"error": "unauthorised"})

        def do_HEAD(self):
            self.send_response(200 if self.path.split("?")[0] in ("/health", "/v1/wallets") else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _metrics(self):
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)

        def _wallets(self):
            if faults.settings.get("status"):
                self._send(faults.settings["status"], {"error": "injected fault"})
            elif not backends.database():
                self._send(503, {"error": "database unavailable"})
            else:
                self._send(200, {"wallets": backends.wallets()})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path == "/v1/quotes":
                self._quote(body)
            elif self.path == "/v1/echo":
                self._echo(body)
            elif self.path == "/_sandbox/faults":
                faults.settings.update(json.loads(body or b"{}"))
                self._send(200, faults.settings)
            elif self.path == "/_sandbox/database":  # the application repointed, as a failover runbook does
                backends.repoint(json.loads(body or b"{}")["dsn"])
                self._send(200, {"database": backends.dsn})
            else:
                self._send(404, {"error": "not found"})

        def _quote(self, body: bytes):
            """A fee quote: a POST that reads only, as payment APIs have them."""
            try:
                asked = json.loads(body) if self.headers.get("Content-Type", "").startswith("application/json") \
                    else None
                amount = float(asked["amount"])
                currency = str(asked["currency"])
            except (ValueError, KeyError, TypeError):
                self._send(400, {"error": "expected a JSON body {amount, currency}"})
                return
            self._send(200, {"amount": amount, "currency": currency, "fee": round(amount * 0.015, 2)})

        def _echo(self, body: bytes):
            try:
                sent = json.loads(body) if body else None
            except ValueError:
                sent = body.decode(errors="replace")
            self._send(200, {"headers": dict(self.headers.items()), "json": sent})

        def do_DELETE(self):
            faults.settings.clear()
            self._send(200, faults.settings)

    return Handler


ENVIRONMENT = ("SANDBOX_PG_DSN", "SANDBOX_PG_PASSWORD", "SANDBOX_REDIS_URL", "SANDBOX_REDIS_PASSWORD", "SANDBOX_API_TOKEN")


def start(box, port: int) -> int:
    """Start this API as a process of its own on ``port``, recorded in the sandbox; returns once it listens."""
    from pathlib import Path

    from opsproof.sandbox.processes import SandboxError, wait_for_port

    log_path = Path(box.state_dir) / "api.log"
    env = {**os.environ, **{k: box.variables[k] for k in ENVIRONMENT}}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "opsproof.sandbox.api", "--port", str(port)],
                                   env=env, stdout=log, stderr=log, start_new_session=True, cwd=box.state_dir)
    box.add_process("api", process.pid, port)
    try:
        wait_for_port(port, 20, "the demo API", process)
    except SandboxError as error:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
        raise SandboxError(f"{error}: {' '.join(tail)}") from None
    return process.pid


def component(box) -> None:
    """Sandbox component: this API, reading connection settings from its environment."""
    import secrets

    from opsproof.sandbox.processes import free_port

    port = free_port()
    box.variables["SANDBOX_API_URL"] = f"http://127.0.0.1:{port}"
    box.variables["SANDBOX_API_TOKEN"] = secrets.token_hex(16)
    start(box, port)


class _Server(ThreadingHTTPServer):
    """A listen backlog as a real server's (nginx: 511), not socketserver's 5: a burst of first requests
    (a run's concurrent health GETs) must queue, not have its connects dropped and retried a second later."""

    request_queue_size = 511


def serve(port: int) -> None:
    backends = Backends()
    backends.database(), backends.cache()  # connect before listening: the first /health is not a cold start
    server = _Server(("127.0.0.1", port), make_handler(backends, Faults()))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
