"""Run folders claimed atomically, artifacts whole or absent, a full disk said in one line (issue 18, items 7, 8)."""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opsproof.artifacts import ArtifactError, create_run_dir, write_atomic

ROOT = Path(__file__).resolve().parent.parent


def _claim(parent: str, queue) -> None:
    queue.put(str(create_run_dir(Path(parent), "20260101T000000Z-smoke")))


def test_processes_racing_for_one_run_folder_each_get_their_own(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_claim, args=(str(tmp_path), queue)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    claimed = sorted(queue.get(timeout=5) for _ in workers)
    assert len(set(claimed)) == 8 and sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(c).name for c in claimed)


def test_write_atomic_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "results.json"
    write_atomic(target, "old\n")
    write_atomic(target, b"new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["results.json"]
    with pytest.raises(ArtifactError) as refused:
        write_atomic(tmp_path / "missing" / "x.json", "x")
    assert refused.value.path == tmp_path / "missing" / "x.json" and refused.value.strerror


@pytest.fixture
def open_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def _environment(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "disk.yaml"
    path.write_text(f"tier: staging\ntcp:\n  gw: {{host: 127.0.0.1, port: {port}, timeout_s: 2}}\n")
    return path


def _run(env: Path, reports: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "opsproof.cli", "run", "--env", str(env), "--suite", "smoke",
                             "--reports-dir", str(reports), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_runs_started_together_keep_their_own_folders(tmp_path, open_port):
    """The second run waits for the lock; before the fix both picked the same free folder name."""
    env, reports = _environment(tmp_path, open_port), tmp_path / "reports"
    runs = [_run(env, reports, "--wait-lock", "60s") for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    folders = sorted(p for p in (reports / "disk").iterdir() if p.is_dir())
    assert len(folders) == 2, folders
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["junit.xml", "report.html", "results.json"]
    records = [json.loads(line) for line in (reports / "disk" / "history.jsonl").read_text().splitlines()]
    assert sorted(r["run_id"] for r in records) == [f.name for f in folders]


def test_a_full_reports_disk_is_one_line_and_exit_1(tmp_path, open_port):
    """A 64 KiB tmpfs as the reports dir: the run says what it could not write, leaves no partial file
    and records no history (which would otherwise hash a cut-short results.json as intact)."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        run = _run(_environment(tmp_path, open_port), tiny)
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 1, stdout + stderr  # every check passed: the run is failed by what it could not write
        assert "Traceback" not in stdout + stderr
        lines = [line for line in stderr.splitlines() if line.startswith("opsproof: could not write")]
        assert len(lines) == 1 and lines[0].endswith(": No space left on device"), stderr
        assert "junit.xml" in lines[0] or "report.html" in lines[0] or "results.json" in lines[0]
        (folder,) = [p for p in (tiny / "disk").iterdir() if p.is_dir()]
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no partial or temporary file
        if (folder / "results.json").exists():  # what is there is whole
            json.loads((folder / "results.json").read_text())
        assert not (tiny / "disk" / "history.jsonl").exists() or not (tiny / "disk" / "history.jsonl").read_text()
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


def test_a_run_stopped_at_start_leaves_no_run_folder(tmp_path, open_port):
    """The folder is claimed when the run starts; a usage error right after (exit 4) removes it again."""
    run = _run(_environment(tmp_path, open_port), tmp_path / "reports", "--wait-lock", "soon")
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 4, stdout + stderr
    assert not [p for p in (tmp_path / "reports").rglob("*") if p.is_dir() and p.name.endswith("-smoke")]
