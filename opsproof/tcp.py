"""Whether a TCP port accepts a connection, and how long resolving and connecting took.

>>> TcpProbe("gateway.example.com", 443, timeout_s=3).connect()      # doctest: +SKIP
('open', 12.4)
>>> TcpProbe("127.0.0.1", 9, timeout_s=3).connect()                   # doctest: +SKIP
('refused', None)
"""

from __future__ import annotations

import socket
import threading
import time


class TcpProbe:
    def __init__(self, host: str, port: int, timeout_s: float):
        self.host, self.port, self.timeout_s = host, port, timeout_s

    @classmethod
    def of(cls, target, environment) -> TcpProbe:
        """The factory the kind registry names: ``opsproof.tcp:TcpProbe.of``."""
        return cls(target.host, target.port, target.timeout_s)

    def connect(self) -> tuple[str, float | None]:
        """``("open", ms)``, or the state that kept it from opening: refused, timeout, unresolved, unreachable.

        Name resolution and the handshake share ``timeout_s``; the connection is closed at once.
        """
        started = time.perf_counter()
        try:
            address = self._resolve()
        except socket.gaierror:
            return "unresolved", None
        except TimeoutError:
            return "timeout", None
        left_s = self.timeout_s - (time.perf_counter() - started)
        try:
            with socket.socket(address[0], socket.SOCK_STREAM) as sock:
                sock.settimeout(max(left_s, 0.001))
                sock.connect(address[4])
        except ConnectionRefusedError:
            return "refused", None
        except (TimeoutError, socket.timeout):
            return "timeout", None
        except OSError as error:
            return f"unreachable ({error.strerror or type(error).__name__})", None
        return "open", (time.perf_counter() - started) * 1000

    def _resolve(self):
        """getaddrinfo has no timeout of its own: it runs on a daemon thread the probe stops waiting for.

        An address written as such (``127.0.0.1``, ``::1``) needs no lookup: ``AI_NUMERICHOST`` answers at
        once, without a thread (starting one cost about 0.5 ms a check); a name raises and is looked up."""
        try:
            return socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0]
        except (socket.gaierror, UnicodeError, ValueError):
            pass
        found: list = []

        def lookup():
            try:
                found.append(socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0])
            except socket.gaierror as error:
                found.append(error)

        thread = threading.Thread(target=lookup, daemon=True)
        thread.start()
        thread.join(self.timeout_s)
        if not found:
            raise TimeoutError
        if isinstance(found[0], socket.gaierror):
            raise found[0]
        return found[0]

    def close(self) -> None:
        """Nothing stays open between checks."""
