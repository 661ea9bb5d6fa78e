"""Where a log check's lines come from: a file on a host (its last ``max_bytes``), a journald unit, a command's
output, or every pod of a Kubernetes workload; each streamed through opsproof.logs.LogScan.

A file is read locally with one seek, over ssh with ``tail -c`` through the host's one connection.
journald and the pod logs are asked for the window itself (``--since``, ``sinceSeconds``), so their lines
need no timestamp format; a file's window is judged by its lines' own timestamps.

>>> result = scan_host_log(host_probe, host_target.logs[0])    # doctest: +SKIP
>>> result.count, result.matches[-1]["line"]                  # doctest: +SKIP
(3, '2026-12-02T16:01:07Z ERROR proof generation failed')
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from opsproof.errors import ProbeError, first_line
from opsproof.logs import LogScan, Stamps, scan_file


@dataclass
class LogResult:
    source: str
    count: int
    matches: list[dict]
    bytes_read: int
    lookback_s: float | None
    covered: bool = True  # the lines read reach back past the window's start (or the source filtered it)
    first_time: str | None = None
    lines_dropped: int = 0
    notes: list[str] = field(default_factory=list)


def new_scan(check, partial_start: bool = False, judge_stamps: bool = True) -> tuple[LogScan, float | None]:
    lookback_s = check.lookback_s()
    stamps = Stamps(check.timestamps.format, check.timestamps.utc_offset) if check.timestamps and judge_stamps \
        else None
    cutoff = time.time() - lookback_s if lookback_s is not None and stamps is not None else None
    return LogScan(check.pattern, check.ignore_case, stamps, cutoff, check.keep_lines, partial_start), lookback_s


def _result(scan: LogScan, source: str, lookback_s: float | None, covered: bool = True) -> LogResult:
    return LogResult(source, scan.count, scan.matches(), scan.bytes_read, lookback_s, covered,
                     scan.first_stamp.isoformat() if scan.first_stamp else None, scan.lines_dropped)


def scan_host_log(probe, check) -> LogResult:
    if check.file is not None:
        return _file(probe, check)
    scan, lookback_s = new_scan(check, judge_stamps=check.run is not None)
    if check.journald is not None:
        since = f"--since @{int(time.time() - lookback_s)}" if lookback_s is not None else ""
        command = f"journalctl -q --no-pager -o short-iso -u {shlex.quote(check.journald)} {since}"
        source = f"journald unit {check.journald}"
    else:
        command, source = check.run, f"command {check.name}"
    ran = probe.shell.run(command, check.timeout, keep_bytes=4096, merge_stderr=check.journald is None,
                          consume=scan.feed)
    scan.finish()
    if ran.code is None:
        raise ProbeError(f"{source}: no end within its timeout of {check.timeout:g} s: stopped")
    if ran.code != 0:
        said = ran.stderr or ran.stdout
        raise ProbeError(f"{source}: exit {ran.code}: {first_line(ValueError(said)) if said.strip() else ''}")
    covered = check.journald is not None or scan.stamps is None or _reaches(scan)
    return _result(scan, source, lookback_s, covered)


def _reaches(scan: LogScan) -> bool:
    return scan.cutoff is None or (scan.first_stamp is not None and scan.first_stamp.timestamp() <= scan.cutoff)


def _file(probe, check) -> LogResult:
    source = f"file {check.file}"
    if probe.shell.local:
        scan, lookback_s = new_scan(check)
        try:
            size = scan_file(check.file, scan, check.max_bytes)
        except OSError as exc:
            raise ProbeError(f"{source}: {exc.strerror or exc}") from None
    else:
        quoted = shlex.quote(check.file)
        sized = probe.shell.run(f"wc -c < {quoted}", probe.timeout_s)
        if sized.code != 0:
            raise ProbeError(f"{source}: {first_line(ValueError(sized.stderr or f'exit {sized.code}'))}")
        size = int(sized.stdout.strip() or 0)
        scan, lookback_s = new_scan(check, partial_start=size > check.max_bytes)
        ran = probe.shell.run(f"tail -c {check.max_bytes} -- {quoted}", check.timeout, keep_bytes=1, consume=scan.feed)
        if ran.code is None:
            raise ProbeError(f"{source}: no end within its timeout of {check.timeout:g} s: stopped")
        if ran.code != 0:
            raise ProbeError(f"{source}: {first_line(ValueError(ran.stderr or f'exit {ran.code}'))}")
        scan.finish()
    covered = size <= check.max_bytes or _reaches(scan)
    return _result(scan, source, lookback_s, covered)


def scan_pod_logs(read, pods: list[dict], check) -> LogResult:
    """Each pod's log since the window (``sinceSeconds``), one container or every one, streamed:
    ``read(pod name, namespace, container, **query)`` returns the API's streaming response."""
    scan, lookback_s = new_scan(check, judge_stamps=False)
    query = {"limit_bytes": check.max_bytes}
    if lookback_s is not None:
        query["since_seconds"] = max(1, int(lookback_s))
    for pod in pods:
        meta = pod.get("metadata") or {}
        containers = [check.container] if check.container else \
            [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        for container in containers:
            response = read(meta.get("name"), meta.get("namespace"), container, **query)
            try:
                for chunk in response.stream(65536):
                    scan.feed(chunk)
                scan.finish()
            finally:
                response.release_conn()
    result = _result(scan, f"{check.kind}/{check.workload}: {len(pods)} pods", lookback_s)
    result.notes.append(", ".join(sorted((p.get("metadata") or {}).get("name", "?") for p in pods)))
    return result
