"""What a host target expects: disk, inodes, memory, load, services, processes, ports, files, certificates."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from opsproof.environment.base import Model, Seconds, Target
from opsproof.thresholds import Ceiling, Floor, PercentCeiling, PercentFloor

AbsPath = Annotated[str, Field(pattern=r"^/\S*$")]


class FileExpectation(Model):
    """A file or directory that must exist, optionally with a mode (octal, ``"0640"``), owner and group."""

    directory: bool = False
    mode: Annotated[str, Field(pattern=r"^0?[0-7]{3,4}$")] | None = None
    owner: str | None = None
    group: str | None = None


class HostTarget(Target):
    """A machine reached by testinfra: ``local://`` or ``ssh://user@host:port`` with ssh options."""

    kind: ClassVar[str] = "host"
    host: Annotated[str, Field(pattern=r"^(local://|ssh://\S+|paramiko://\S+)$")] = "local://"
    ssh_identity_file: str | None = None
    ssh_config: str | None = None
    timeout_s: Seconds = 10.0
    filesystems: dict[AbsPath, PercentCeiling] = Field(default_factory=dict, description="mount -> used %")
    inodes: dict[AbsPath, PercentCeiling] = Field(default_factory=dict, description="mount -> inodes used %")
    memory_available_pct: PercentFloor | None = None
    load_per_cpu: Ceiling | None = None
    services: list[str] = Field(default_factory=list, description="must be running and enabled")
    processes: list[str] = Field(default_factory=list, description="process names (comm) that must run")
    ports: list[Annotated[str, Field(pattern=r"^(tcp|udp)://\S+:\d+$")]] = Field(
        default_factory=list, description="listening sockets, as testinfra writes them: tcp://0.0.0.0:22")
    files: dict[AbsPath, FileExpectation] = Field(default_factory=dict)
    time_sync: bool = False
    certificates: dict[AbsPath, Floor] = Field(default_factory=dict, description="PEM file -> days to expiry")
