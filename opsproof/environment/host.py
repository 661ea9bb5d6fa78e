"""What a host target expects: disk, inodes, memory, CPU, load, services, processes, ports, files, certificates,
commands, logs and PM2 apps."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from opsproof.environment.base import Model, Seconds, Target
from opsproof.environment.ops import CommandCheck, HostLog, Name
from opsproof.thresholds import Ceiling, Floor, PercentCeiling, PercentFloor

AbsPath = Annotated[str, Field(pattern=r"^/\S*$")]


class FileExpectation(Model):
    """A file or directory that must exist, optionally with a mode (octal, ``"0640"``), owner and group."""

    directory: bool = False
    mode: Annotated[str, Field(pattern=r"^0?[0-7]{3,4}$")] | None = None
    owner: str | None = None
    group: str | None = None


class ProcessCheck(Model):
    """Processes found by ``comm`` name or a regular expression over the command line: how many, their
    memory (RSS, summed) and CPU % (of one core, summed, sampled over the host's ``cpu_sample_s``)."""

    name: Name
    comm: str | None = Field(None, description="process name as the kernel keeps it (15 characters)")
    pattern: str | None = Field(None, description="regular expression searched in the command line")
    min_count: Annotated[int, Field(ge=0)] = 1
    max_count: Annotated[int, Field(ge=1)] | None = None
    rss_mb: Ceiling | None = None
    cpu_pct: Ceiling | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value):
        import re

        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _found_by_one(self):
        if (self.comm is None) == (self.pattern is None):
            raise ValueError("give comm or pattern, not both")
        return self


class Pm2(Model):
    """PM2's apps (``pm2 jlist``): each online, restarts and memory within limits. opsproof never starts a
    PM2 daemon: without one running for ``home`` (PM2_HOME), every app counts as not online."""

    command: str = Field("pm2", description="the pm2 binary (./node_modules/.bin/pm2)")
    home: str | None = Field(None, description="PM2_HOME; default ~/.pm2 of the user")
    apps: list[str] = Field(default_factory=list, description="apps that must be online (default: every app)")
    restarts: Ceiling | None = None
    memory_mb: Ceiling | None = None
    timeout_s: Seconds = 15.0


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
    memory_used_pct: PercentCeiling | None = Field(None, description="(MemTotal - MemAvailable) / MemTotal, as free")
    cpu_used_pct: PercentCeiling | None = Field(None, description="all CPUs busy %, from /proc/stat")
    cpu_sample_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    top_processes: Annotated[int, Field(ge=0, le=50)] = 5
    process_checks: list[ProcessCheck] = Field(default_factory=list)
    commands: list[CommandCheck] = Field(default_factory=list)
    logs: list[HostLog] = Field(default_factory=list)
    pm2: Pm2 | None = None

    @field_validator("commands", "logs", "process_checks")
    @classmethod
    def _unique_names(cls, value):
        names = [item.name for item in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"names must be unique: {', '.join(twice)}")
        return value

    @classmethod
    def check_section(cls, targets: dict[str, HostTarget], environment) -> None:
        """On production a command may only read: each must say so (``read_only: true``)."""
        if environment.tier != "production":
            return
        for target in targets.values():
            for field, items in (("commands", target.commands), ("logs", [x for x in target.logs if x.run])):
                for item in items:
                    if not item.read_only:
                        raise ValueError(f"host.{target.name}.{field}.{item.name}: a command on tier production "
                                         f"must declare read_only: true (production is read-only; say so only "
                                         f"of a command that changes nothing)")
