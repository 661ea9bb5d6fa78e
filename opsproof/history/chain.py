"""The run history: one JSON line per run, each carrying the hash of the one before it.

Appending is the only write; a record's ``hash`` is the sha256 of its canonical JSON without that
field, and its ``prev_hash`` is the previous record's ``hash``, so editing, removing, inserting or
reordering a line breaks the chain at a line ``verify`` names. Each record also carries the sha256
of its run's artifacts, so a report edited after the run is caught too.

>>> append(path, record_for_run(run_dir, path))   # the controller, once per run
>>> verify(path).problems                          # [] when intact
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

HISTORY_FILE = "history.jsonl"
ARTIFACTS = ("report.html", "junit.xml", "results.json")
GENESIS = "0" * 64


def history_path(reports_base: Path, env_name: str, history_dir: str | None, env_file: Path | None) -> Path:
    """``<reports>/<env>/history.jsonl``, or ``<history_dir>/history.jsonl`` (relative to the environment file)."""
    if history_dir:
        directory = Path(history_dir)
        if not directory.is_absolute() and env_file is not None:
            directory = env_file.parent / directory
        return directory / HISTORY_FILE
    return reports_base / env_name / HISTORY_FILE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def record_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "operator": operator(),
        "host": results.get("host", ""),
        "git_revision": git_revision(root),
        "opsproof_version": results.get("opsproof_version", ""),
        "counts": counts,
        "verdict": results["verdict"],
        "exit_code": results["exit_code"],
        "artifacts": artifacts,
    }


def read(path: Path) -> list[dict]:
    """Every record that parses (for reading; ``verify`` is what judges the chain)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def append(path: Path, record: dict) -> dict:
    """Chain ``record`` after the last one and append it, under a lock so concurrent runs do not interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=60):
        last = _last_record(path)
        chained = {
            "seq": (last["seq"] + 1) if last else 1,
            **record,
            "prev_hash": last["hash"] if last else GENESIS,
        }
        chained["hash"] = record_hash(chained)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(chained, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return chained


def _last_record(path: Path) -> dict | None:
    if not path.exists():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


@dataclass
class Verification:
    path: Path
    records: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, check_artifacts: bool = True) -> Verification:
    """Walk the chain; each problem names its line and says what kind of tampering it looks like."""
    result = Verification(path)
    if not path.exists():
        result.problems.append(f"{path}: no history (no run recorded yet)")
        return result
    previous_hash, expected_seq = GENESIS, 1
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        result.records += 1
        try:
            record = json.loads(line)
            seq, stored, prev = record["seq"], record["hash"], record["prev_hash"]
        except (ValueError, KeyError, TypeError):
            result.problems.append(f"line {number}: not a history record (edited or truncated)")
            break
        if record_hash(record) != stored:
            result.problems.append(f"line {number}: record edited (its content does not match its hash)")
        elif prev != previous_hash:
            if seq > expected_seq:
                result.problems.append(f"line {number}: record(s) removed before it (seq {seq}, expected {expected_seq})")
            elif seq < expected_seq:
                result.problems.append(f"line {number}: records reordered (seq {seq} after seq {expected_seq - 1})")
            else:
                result.problems.append(f"line {number}: record inserted or replaced (prev_hash does not match line "
                                       f"{number - 1})")
        if check_artifacts:
            result.problems.extend(f"line {number}: {p}" for p in artifact_problems(path.parent, record))
        previous_hash, expected_seq = stored, seq + 1
    if check_artifacts:
        result.problems.extend(unrecorded_runs(path.parent, read(path)))
    return result


def unrecorded_runs(base: Path, records: list[dict]) -> list[str]:
    """Run folders beside the recorded ones that no record cites: how a removed *last* record shows."""
    cited = {(base / a["path"]).parent.resolve() for r in records for a in r.get("artifacts", [])}
    began = min((r["started_at"] for r in records if r.get("started_at")), default=None)
    problems = []
    for parent in sorted({folder.parent for folder in cited}):
        for folder in sorted(parent.iterdir()):
            if (folder / "results.json").is_file() and folder.resolve() not in cited and _after(folder, began):
                problems.append(f"run folder {os.path.relpath(folder, base)} has no history record "
                                f"(a record removed from the end, or a run that was not recorded)")
    return problems


def artifact_problems(base: Path, record: dict) -> list[str]:
    problems = []
    for artifact in record.get("artifacts", []):
        file = base / artifact["path"]
        if not file.is_file():
            problems.append(f"artifact {artifact['path']} is missing")
        elif sha256_file(file) != artifact["sha256"]:
            problems.append(f"artifact {artifact['path']} changed after the run (sha256 mismatch)")
    return problems


def _after(folder: Path, began: str | None) -> bool:
    """Runs from before the history began (older reports) are not evidence of a removed record."""
    try:
        started = json.loads((folder / "results.json").read_text(encoding="utf-8"))["started_at"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return began is None or started >= began
