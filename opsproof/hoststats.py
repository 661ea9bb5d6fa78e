"""CPU and processes of a host from /proc, sampled twice over a short window in one shell round trip.

CPU % is what top shows: the share of ticks not idle between two reads of /proc/stat's ``cpu`` line
(``iowait`` counts as idle; ``guest`` is already inside ``user``, so it is not added again; see proc(5)).
A process's CPU % is of one core, as top and ps write it: its utime+stime ticks over the window's ticks
per CPU. RSS is /proc/<pid>/stat field 24 in pages. Command lines come from ``ps -eo pid=,args=``.

>>> parse_sample(SAMPLE_EXAMPLE).cpu_used_pct
50.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SAMPLE_BYTES = 16 << 20  # two reads of every /proc/<pid>/stat and ps: about 150 KB for 300 processes
MARK = "opsproof-sample"  # in the sampling script's own command line: it never counts as a process


def script(seconds: float) -> str:
    read = "head -1 /proc/stat; grep -c '^cpu[0-9]' /proc/stat; cat /proc/[0-9]*/stat 2>/dev/null"
    return (f": {MARK}; {read}; echo @@; sleep {seconds:g}; {read}; echo @@; ps -eo pid=,args=; echo @@; "
            f"getconf PAGESIZE; getconf CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    comm: str
    args: str
    rss_bytes: int
    cpu_pct: float


@dataclass
class Sample:
    cpu_used_pct: float
    cpus: int
    window_s: float
    processes: list[Proc] = field(default_factory=list)

    def top(self, n: int, by: str) -> list[dict]:
        """The ``n`` processes with the most ``rss_bytes`` or ``cpu_pct``, as evidence rows."""
        ranked = sorted(self.processes, key=lambda p: getattr(p, by), reverse=True)[:n]
        return [{"pid": p.pid, "comm": p.comm, "rss_mb": round(p.rss_bytes / 2**20, 1),
                 "cpu_pct": round(p.cpu_pct, 1)} for p in ranked]

    def find(self, comm: str | None = None, pattern: str | None = None) -> list[Proc]:
        if comm is not None:
            return [p for p in self.processes if p.comm == comm[:15]]
        regex = re.compile(pattern)
        return [p for p in self.processes if regex.search(p.args)]


def _cpu(line: str) -> tuple[int, int]:
    values = [int(x) for x in line.split()[1:]] + [0] * 10
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return user + nice + system + idle + iowait + irq + softirq + steal, idle + iowait


def _procs(lines: list[str]) -> dict[int, tuple[str, int, int, int]]:
    """pid -> (comm, start ticks, cpu ticks, rss pages) from /proc/<pid>/stat lines (split at the last ')')."""
    found = {}
    for line in lines:
        head, _, rest = line.rpartition(") ")
        pid, _, comm = head.partition(" (")
        fields = rest.split()
        if len(fields) < 22 or not pid.isdigit():
            continue
        found[int(pid)] = (comm, int(fields[19]), int(fields[11]) + int(fields[12]), int(fields[21]))
    return found


def parse_sample(output: str, window_s: float = 1.0) -> Sample:
    first, second, ps, constants = re.split(r"^@@\n", output, flags=re.MULTILINE)
    first_lines, second_lines = first.splitlines(), second.splitlines()
    (total1, idle1), (total2, idle2) = _cpu(first_lines[0]), _cpu(second_lines[0])
    cpus = int(second_lines[1])
    elapsed = max(total2 - total1, 1)
    busy = 100.0 * (elapsed - (idle2 - idle1)) / elapsed
    page_size = int(constants.split()[0])
    before, after = _procs(first_lines[2:]), _procs(second_lines[2:])
    args = {}
    for line in ps.splitlines():
        pid, _, rest = line.strip().partition(" ")
        if pid.isdigit():
            args[int(pid)] = rest.strip()
    per_cpu_ticks = elapsed / max(cpus, 1)
    processes = []
    for pid, (comm, start, ticks, rss) in after.items():
        command = args.get(pid, "")
        if MARK in command:
            continue
        earlier = before.get(pid)
        used = ticks - earlier[2] if earlier and earlier[1] == start else 0
        processes.append(Proc(pid, comm, command, rss * page_size, 100.0 * used / per_cpu_ticks))
    return Sample(round(busy, 1), cpus, window_s, processes)


SAMPLE_EXAMPLE = ("cpu 100 0 100 200 0 0 0 0 0 0\n2\n1 (init) S 0 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 10\n@@\n"
                  "cpu 200 0 200 400 0 0 0 0 0 0\n2\n1 (init) S 0 1 1 0 -1 0 0 0 0 0 2 2 0 0 20 0 1 0 5 0 10\n@@\n"
                  "    1 /sbin/init\n@@\n4096\n100\n")
