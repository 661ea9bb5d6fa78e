"""TCP targets: a port this runner must reach (a provider's gateway, a broker, an SMTP relay), and how fast."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from opsproof.environment.base import Seconds, Target
from opsproof.thresholds import Ceiling


class TcpTarget(Target):
    """``nc -z host port`` as a check: the port accepts a connection within ``timeout_s``."""

    kind: ClassVar[str] = "tcp"
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:_-]+$")]
    port: Annotated[int, Field(gt=0, lt=65536)]
    timeout_s: Seconds = 3.0
    connect_ms: Ceiling | None = Field(None, description="name resolution plus the TCP handshake")
