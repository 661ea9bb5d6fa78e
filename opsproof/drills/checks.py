"""The real checks, run against recovered targets: an inner ``pytest`` run of the project's checks/.

Used by ``verify`` (once, after the steps) and by ``wait_healthy`` with a ``suite`` (until they pass). The
inner run is a process of its own, limited to the named targets and check names (``--drill-targets``,
``--drill-checks``: fixtures/dr.py), never destructive; it writes no results.json and no history (the
drill's own run does), only a junit.xml in a temporary directory, read here for what failed. About 2 s
a run: the price of judging recovery by the very checks that gate a deploy.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from opsproof.paths import project_root
from opsproof.processes import owned_tempdir

NO_CHECKS = 5  # pytest: nothing collected


@dataclass
class ChecksRun:
    """What an inner run found: the failed checks with their evidence line, and how many ran."""

    failed: dict[str, str] = field(default_factory=dict)
    passed: int = 0
    skipped: int = 0
    problem: str | None = None  # the run itself did not work (timeout, no checks selected)

    @property
    def ok(self) -> bool:
        return not self.failed and self.problem is None

    def summary(self) -> str:
        if self.problem:
            return self.problem
        failed = "".join(f"; {name}: {message}" for name, message in self.failed.items())
        return f"{self.passed} passed, {self.skipped} skipped, {len(self.failed)} failed{failed}"


def run_checks(env_file: Path, deadline: float | None, suite: str | None = None, targets=(), checks=()) -> ChecksRun:
    """One inner run of checks/ against ``env_file``; ``deadline`` stops it (its process group) when reached."""
    from opsproof.drills.command import execute, last_line

    root = project_root()
    scratch = owned_tempdir("opsproof-dr-checks-")  # a killed run's is removed by the next one
    marks = f"({suite}) and not destructive" if suite else "not destructive"
    argv = [sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
            str(root / "checks"), "--env", str(env_file), "-m", marks, "-q", "-p", "no:cacheprovider",
            "-p", "no:fixtures.results", "-p", "no:html", "-p", "no:anyio", "-p", "no:pytest_httpserver",
            # part of the drill's own run, which holds the environment's lock and records the history: the
            # inner run takes no lock, appends no history record and sends no alert
            "-p", "no:fixtures.runlock", "-p", "no:fixtures.history", "-p", "no:fixtures.publish",
            "--reports-dir", str(scratch / "reports"), "--junitxml", str(scratch / "junit.xml")]
    for target in targets:
        argv += ["--drill-targets", target]
    for check in checks:
        argv += ["--drill-checks", check]
    try:
        code, output = execute(argv, deadline=deadline)
        found = _read_junit(scratch / "junit.xml")
        said = last_line(output)[:300] or "no output"
        if code is None:
            found.problem = f"the checks did not finish before the step's timeout ({said})"
        elif code == NO_CHECKS:
            found.problem = "no checks selected: check the suite, check names and targets"
        elif code != 0 and not found.failed:
            found.problem = f"the checks' run exited {code}: {said}"
        return found
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_junit(path: Path) -> ChecksRun:
    found = ChecksRun()
    if not path.is_file():
        return found
    for case in ElementTree.parse(path).iter("testcase"):
        name = case.get("name", "?")
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            message = (problem.get("message") or "failed").strip().splitlines() or ["failed"]
            found.failed[name] = re.sub(r"^\S+\.py:\d+: ", "", message[0])[:300]  # the evidence line
        elif case.find("skipped") is not None:
            found.skipped += 1
        else:
            found.passed += 1
    return found


def wait_until_pass(env_file: Path, deadline: float | None, every_s: float, **selection) -> tuple[ChecksRun, int]:
    """Inner runs until one passes or the deadline comes; the last run and how many there were."""
    attempts = 0
    while True:
        attempts += 1
        found = run_checks(env_file, deadline, **selection)
        if found.ok or deadline is None or time.monotonic() + every_s >= deadline:
            return found, attempts
        time.sleep(every_s)
