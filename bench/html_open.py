"""Benchmark: how long the HTML report of a 5000-check nightly run takes to open in headless Chromium.

Writes an environment of N TCP targets against a local listener (a few point at a closed port, so the run
fails as a bad night does), runs ``opsproof run --suite nightly`` with the real plugin (every other check
of the nightly suite skips as not configured here), then opens its report.html at 1280 px in headless
Chromium, several times. Prints the page's own time from navigation start to drawn (``performance.now()``
after pytest-html's script has drawn the table) and Chromium's whole wall time, with an empty page's wall
time beside it (Chromium's own start-up).
Usage: ``.venv/bin/python bench/html_open.py [--checks 5000] [--failing 10] [--runs 5] [--keep report.html]``;
``--page a.html --page b.html`` opens existing reports in turn instead (a before and after, side by side).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from chromium import measure  # noqa: E402  (tests/chromium.py: also the screenshot test's)


def listener() -> tuple[socket.socket, int]:
    """A loopback port that accepts and closes every connection, on a daemon thread."""
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def closed_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def write_run(scratch: Path, checks: int, failing: int) -> tuple[Path, float]:
    """One nightly run of ``checks`` TCP checks; returns its report.html and how long the run took."""
    _, port = listener()
    dead = closed_port()
    targets = {f"port{i:05d}": {"host": "127.0.0.1", "port": dead if i < failing else port, "timeout_s": 2,
                                "connect_ms": {"warn": 500, "crit": 2000}} for i in range(checks)}
    env_file = scratch / "bench.yaml"
    env_file.write_text(yaml.safe_dump({"name": "bench", "tier": "sandbox", "tcp": targets}))
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "opsproof"), "run", "--env", str(env_file),
                           "--suite", "nightly", "--reports-dir", str(scratch / "reports"), "-q", "-p", "no:randomly"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    pages = list((scratch / "reports").glob("bench/*/report.html"))
    if len(pages) != 1:
        sys.exit(f"the run wrote no report (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return pages[0], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--failing", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="copy the report here")
    parser.add_argument("--page", type=Path, action="append", help="measure this report instead (repeatable: "
                        "several are opened in turn, to compare them side by side)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsproof-bench-html-") as scratch:
        if args.page:
            pages = args.page
        else:
            page, run_s = write_run(Path(scratch), args.checks, args.failing)
            print(f"run of {args.checks} checks ({args.failing} failing): {run_s:.1f} s")
            pages = [page]
            if args.keep:
                args.keep.write_bytes(page.read_bytes())
        empty = Path(scratch) / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body><p>empty</p></body></html>")
        for page in pages:
            measure(page, widest=False)  # warm-up: page cache, Chromium's own files
        opened = {page: [] for page in pages}
        bare = []
        for _ in range(args.runs):  # in turn, so a busy moment of the machine hits each alike
            for page in pages:
                opened[page].append(measure(page, widest=False))
            bare.append(measure(empty, widest=False)["wall_s"])
        for page, runs in opened.items():
            report(page, runs, bare)


def report(page: Path, opened: list[dict], bare: list[float]) -> None:
    last = opened[-1]
    print(f"{page.name}: {page.stat().st_size / 1e6:.1f} MB, {last['rows']} table rows; "
          f"page {last['scroll_width']} px wide in a {last['inner_width']} px window")
    print(f"  opened (navigation start to parsed and laid out), median of {len(opened)}: "
          f"{statistics.median(m['opened_ms'] for m in opened):.0f} ms "
          f"(min {min(m['opened_ms'] for m in opened):.0f}, max {max(m['opened_ms'] for m in opened):.0f})")
    print(f"  chromium --dump-dom wall time: report {statistics.median(m['wall_s'] for m in opened):.2f} s, "
          f"empty page {statistics.median(bare):.2f} s")


if __name__ == "__main__":
    main()
