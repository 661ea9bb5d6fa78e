"""What a run's history record says: read from its (already scrubbed) results.json, with its artifacts' sha256."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ARTIFACTS = ("report.html", "junit.xml", "results.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def operator() -> str:
    """Who ran it: ``$OPSPROOF_OPERATOR`` (a CI job sets it), else the OS user."""
    if os.environ.get("OPSPROOF_OPERATOR"):
        return os.environ["OPSPROOF_OPERATOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def git_revision(root: Path) -> str:
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_for_run(run_dir: Path, history_file: Path, root: Path) -> dict:
    """The history record of a finished run, read from its (already scrubbed) results.json."""
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for check in results.get("checks", []):
        counts[check["outcome"]] = counts.get(check["outcome"], 0) + 1
    base = history_file.parent
    artifacts = [
        {"name": name, "path": os.path.relpath(run_dir / name, base), "sha256": sha256_file(run_dir / name)}
        for name in ARTIFACTS if (run_dir / name).is_file()
    ]
    return {
        "run_id": run_dir.name,
        "environment": results["environment"]["name"],
        "tier": results["environment"]["tier"],
        "suite": results["suite"],
        "started_at": results["started_at"],
        "finished_at": results["finished_at"],
        "recorded_at": now_utc(),
        "operator": operator(),
        "host": results.get("host", ""),
        "git_revision": git_revision(root),
        "opsproof_version": results.get("opsproof_version", ""),
        "counts": counts,
        "verdict": results["verdict"],
        "exit_code": results["exit_code"],
        "artifacts": artifacts,
    }
