"""Benchmark: a log check over a 1 GB file against ``tail -c N | grep -c``, and 50 command checks over one
multiplexed ssh connection against 50 plain ``ssh host cmd``.

Logs: writes a 1 GB log of ISO-timestamped lines (an ERROR every 1000th line) once, then times, each in a
fresh process measured by ``/usr/bin/time`` (wall time and peak RSS): ``tail -c N FILE | grep -cE
'ERROR|Traceback'`` and opsproof's log scan of the same last N bytes (opsproof.logs: its lines' own
timestamps judged against a 24 h window, which holds every line, so both count the same). N is the default ``max_bytes`` (64 MiB) and the whole file.
Commands: starts a throwaway sshd on loopback (as the tests do), then runs ``echo ok`` 50 times with plain
``ssh`` (a new connection each) and 50 times through a host target's shell (opsproof.shell: one master
connection, each command under ``timeout`` on the host), and ``opsproof run`` of an environment with 50
command checks on that host (pytest start-up and reports included).
Usage: ``.venv/bin/python bench/logs_and_commands.py [--runs 3] [--log /tmp/opsproof-bench-1g.log]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port
from opsproof.shell import HostShell

SCAN = textwrap.dedent("""\
    import sys, time
    from opsproof.logs import LogScan, Stamps, scan_file
    scan = LogScan("ERROR|Traceback", stamps=Stamps("iso"), cutoff=time.time() - 86400, keep=5)
    scan_file(sys.argv[1], scan, int(sys.argv[2]))
    print(scan.count)
    """)


def write_log(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size >= size:
        return
    start = datetime.now(UTC) - timedelta(hours=10)  # 2 ms a line: the file ends about now
    with open(path, "w") as file:
        written, line_no = 0, 0
        while written < size:
            block = []
            for _ in range(10000):
                stamp = (start + timedelta(milliseconds=line_no * 2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                level = "ERROR proof generation failed" if line_no % 1000 == 0 else "INFO request served in 12 ms"
                block.append(f"{stamp} {level} id={line_no}\n")
                line_no += 1
            text = "".join(block)
            file.write(text)
            written += len(text)


def measured(command: list[str], runs: int) -> tuple[float, float, str]:
    """Median wall seconds and peak RSS (MB) of ``command`` under /usr/bin/time, a warm-up first."""
    results = []
    for _ in range(runs + 1):
        done = subprocess.run(["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall, rss_kb = done.stderr.strip().splitlines()[-1].split()
        results.append((float(wall), int(rss_kb) / 1024, done.stdout.strip()))
    results = results[1:]
    return statistics.median(r[0] for r in results), max(r[1] for r in results), results[-1][2]


def bench_logs(path: Path, runs: int) -> None:
    write_log(path, 1 << 30)
    print(f"log check over {path} ({path.stat().st_size / 2**30:.2f} GiB), median of {runs}:")
    for n in (64 << 20, path.stat().st_size):
        shell_s, shell_mb, shell_count = measured(
            ["sh", "-c", f"tail -c {n} {path} | grep -cE 'ERROR|Traceback'"], runs)
        ours_s, ours_mb, ours_count = measured([sys.executable, "-c", SCAN, str(path), str(n)], runs)
        print(f"  last {n / 2**20:6.0f} MiB: tail|grep -c {shell_s:6.2f} s {shell_mb:6.1f} MB (count {shell_count}) | "
              f"opsproof scan (24 h window) {ours_s:6.2f} s {ours_mb:6.1f} MB (count {ours_count}) | "
              f"ratio {ours_s / max(shell_s, 0.01):.1f}")


def start_sshd(base: Path) -> tuple[subprocess.Popen, dict]:
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)], check=True)
    (base / "authorized_keys").write_text((base / "user_key.pub").read_text())
    port = free_port()
    (base / "sshd_config").write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {base / 'host_key'}
        PidFile {base / 'sshd.pid'}
        AuthorizedKeysFile {base / 'authorized_keys'}
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        """))
    (base / "ssh_config").write_text(f"Host 127.0.0.1\n  StrictHostKeyChecking no\n  UserKnownHostsFile {os.devnull}\n"
                                     f"  LogLevel ERROR\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(base / "sshd_config")],
                               stderr=subprocess.DEVNULL)
    wait_for_port(port, 10, "sshd", process)
    return process, {"host": f"ssh://root@127.0.0.1:{port}", "ssh_identity_file": str(base / "user_key"),
                     "ssh_config": str(base / "ssh_config")}


def bench_commands(runs: int, count: int = 50) -> None:
    base = Path(tempfile.mkdtemp(prefix="opsproof-bench-ssh-"))
    sshd, host = start_sshd(base)
    port = host["host"].rsplit(":", 1)[1]
    plain = ["ssh", "-F", host["ssh_config"], "-i", host["ssh_identity_file"], "-p", port, "-o", "BatchMode=yes",
             "root@127.0.0.1", "echo ok"]
    try:
        plain_times, shell_times, run_times = [], [], []
        env_file = base / "bench-cmds.yaml"
        commands = [{"name": f"c{i}", "run": "echo ok", "stdout": "ok"} for i in range(count)]
        env_file.write_text(yaml.safe_dump({"name": "bench-cmds", "tier": "staging",
                                            "host": {"box": {**host, "commands": commands}}}))
        opsproof = [str(Path(sys.executable).parent / "opsproof"), "run", "--env", str(env_file),
                    "--reports-dir", str(base / "reports")]
        for attempt in range(runs + 1):
            started = time.perf_counter()
            for _ in range(count):
                subprocess.run(plain, capture_output=True, check=True, timeout=30)
            plain_s = time.perf_counter() - started
            shell = HostShell(host["host"], host["ssh_identity_file"], host["ssh_config"], 10)
            started = time.perf_counter()
            for _ in range(count):
                assert shell.run("echo ok", 10).stdout == "ok\n"
            shell_s = time.perf_counter() - started
            shell.close()
            started = time.perf_counter()
            done = subprocess.run(opsproof, capture_output=True, text=True, cwd=ROOT, timeout=300)
            run_s = time.perf_counter() - started
            if done.returncode != 0:
                sys.exit(f"opsproof run failed (exit {done.returncode}):\n{done.stdout[-2000:]}")
            if attempt:  # the first is a warm-up
                plain_times.append(plain_s), shell_times.append(shell_s), run_times.append(run_s)
        plain_s, shell_s, run_s = map(statistics.median, (plain_times, shell_times, run_times))
        print(f"{count} commands over ssh, median of {runs}:")
        print(f"  {count} x plain ssh host cmd:                 {plain_s:6.2f} s")
        print(f"  {count} x through one multiplexed connection:  {shell_s:6.2f} s  (ratio {shell_s / plain_s:.2f})")
        print(f"  opsproof run with {count} command checks:     {run_s:6.2f} s  (ratio {run_s / plain_s:.2f})")
    finally:
        stop_pid(sshd.pid)
        sshd.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "opsproof-bench-1g.log")
    parser.add_argument("--keep-log", action="store_true", help="leave the 1 GB log for the next run")
    args = parser.parse_args()
    try:
        bench_logs(args.log, args.runs)
    finally:
        if not args.keep_log:
            args.log.unlink(missing_ok=True)
    bench_commands(args.runs)


if __name__ == "__main__":
    main()
