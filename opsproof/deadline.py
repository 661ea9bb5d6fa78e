"""A wall-clock deadline for a whole client operation, where the client bounds only each read.

Client timeouts (httpx ``read``, redis-py ``socket_timeout``, a socket's ``settimeout``) bound the wait for
*each* chunk: a server sending one byte a second never trips them, and ``timeout_s: 3`` took 121 s. A
watchdog that cuts the connection when the deadline passes turns that into an error at ``timeout_s``.

>>> with cut_off_after(3.0, connection.close) as expired:     # doctest: +SKIP
...     reply = read_reply(connection)                         # a blocked read returns once cut off
>>> expired.is_set()                                           # doctest: +SKIP
False
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def cut_off_after(seconds: float, cut: Callable[[], None]) -> Iterator[threading.Event]:
    """Call ``cut()`` (close or shut down the connection) if the block still runs after ``seconds``.

    The event tells the caller that an error raised in the block came from the cut, not the server.
    """
    expired = threading.Event()

    def fire() -> None:
        expired.set()
        try:
            cut()
        except Exception:  # noqa: BLE001 - a connection already gone needs no cutting
            pass

    timer = threading.Timer(max(seconds, 0.0), fire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
