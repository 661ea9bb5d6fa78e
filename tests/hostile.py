"""Hostile servers on loopback: they trickle, never end, or expand; each connection on its own thread.

Real sockets, real clients: what opsproof's probes must survive in production (a stuck proxy, a
misbehaving health endpoint, a compromised dependency).
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from contextlib import contextmanager

STATUS = b"HTTP/1.1 200 OK\r\n"
JSON = b"Content-Type: application/json\r\n"


def _drain_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def _trickle(conn: socket.socket, data: bytes, every_s: float) -> None:
    for i in range(len(data)):
        conn.sendall(data[i:i + 1])
        time.sleep(every_s)


def gzip_bomb(decoded_bytes: int) -> bytes:
    """``decoded_bytes`` of zeros, gzip-compressed (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
    return b"".join(parts) + compressor.flush()


def _http(mode: str, conn: socket.socket, port: int, bomb: bytes) -> None:
    _drain_request(conn)
    if mode == "trickle-body":  # headers at once, then a JSON body at 1 byte/s (it never completes in time)
        body = b'{"status": "healthy"}' + b" " * 200
        conn.sendall(STATUS + JSON + b"Content-Length: %d\r\n\r\n" % len(body))
        _trickle(conn, body, 1.0)
    elif mode == "trickle-headers":
        _trickle(conn, STATUS + JSON + b"X-Slow: " + b"a" * 300 + b"\r\n\r\n", 1.0)
    elif mode == "endless":  # chunked, forever, as fast as the client reads
        conn.sendall(STATUS + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
        while True:
            conn.sendall(chunk)
    elif mode == "gzip-bomb":
        conn.sendall(STATUS + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb)
    elif mode == "redirect-loop":
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/again\r\nContent-Length: 0\r\n\r\n"
                     % port)
        _drain_request(conn)  # keep-alive: the next hop arrives on the same connection
        while True:
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
            _drain_request(conn)


def _redis_slow(conn: socket.socket, every_s: float) -> None:
    """Answers the connection's HELLO at once, then every command with +PONG, one byte each ``every_s``."""
    while True:
        command = conn.recv(4096)
        if not command:
            return
        if b"HELLO" in command.upper():
            conn.sendall(b"%1\r\n$5\r\nproto\r\n:3\r\n")
        else:
            _trickle(conn, b"+PONG\r\n", every_s)


@contextmanager
def serve(mode: str, bomb_bytes: int = 0, every_s: float = 0.5):
    """A hostile server on a free loopback port: yields the port; its threads die with the test process."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    bomb = gzip_bomb(bomb_bytes) if mode == "gzip-bomb" else b""
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                if mode == "redis-slow":
                    _redis_slow(conn, every_s)
                else:
                    _http(mode, conn, port, bomb)
            except OSError:
                pass  # the client gave up: what the test wants

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        stop.set()
        listener.close()
