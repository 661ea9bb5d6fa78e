"""Retention: remove run folders older than a period, and say so first in the history (a chained ``prune`` record).

Only folders that a run record cites are pruned, and only when their artifacts still match the hashes
recorded (a changed artifact is evidence of tampering: it stays). The newest ``keep_last`` runs of each
suite stay whatever their age, and runs holding a drill record stay at least 400 days unless drills are
included. The prune record lists each run with its artifacts' paths and sha256, so ``verify`` and the
readiness report can tell "pruned under retention" from "missing".
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from opsproof.history import chain, schema
from opsproof.history.record import now_utc, operator, sha256_file

DRILL_KEEP_DAYS = 400


@dataclass
class Plan:
    prune: list[dict] = field(default_factory=list)  # the entries of the prune record, plus "folder" and "bytes"
    kept_for_drills: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # runs not pruned, each with why


def pruned_seqs(records: list[dict]) -> set[int]:
    return {run["seq"] for r in records if r.get("type") == "prune" and schema.problem(r) is None for run in r["pruned"]}


def plan(history_file: Path, runs_dir: Path, keep_s: float, keep_last: int = 0, include_drills: bool = False,
         now: datetime | None = None) -> Plan:
    now = now or datetime.now(timezone.utc)
    records = chain.read(history_file)
    gone = pruned_seqs(records)
    runs = [r for r in records if schema.is_run(r) and r["seq"] not in gone and r["artifacts"]]
    newest: set[int] = set()
    for suite in {r["suite"] for r in runs}:
        newest |= {r["seq"] for r in [r for r in runs if r["suite"] == suite][::-1][:keep_last]}
    result = Plan()
    for record in runs:
        age = now - _when(record["started_at"])
        if age <= timedelta(seconds=keep_s) or record["seq"] in newest:
            continue
        folder = (history_file.parent / record["artifacts"][0]["path"]).parent
        if not folder.is_dir():
            continue  # gone already without a prune record: verify names it, prune does not paper over it
        if not _inside(folder, runs_dir):
            result.refused.append(f"{record['run_id']}: its folder {folder} is outside {runs_dir}")
            continue
        if not include_drills and age <= timedelta(days=DRILL_KEEP_DAYS) and _holds_drill(folder):
            result.kept_for_drills.append(record["run_id"])
            continue
        changed = [a["name"] for a in record["artifacts"]
                   if not (history_file.parent / a["path"]).is_file()
                   or sha256_file(history_file.parent / a["path"]) != a["sha256"]]
        if changed:
            result.refused.append(f"{record['run_id']}: {', '.join(changed)} missing or changed since the run "
                                  f"(kept as evidence; see history verify)")
            continue
        cited = {Path(a["path"]).name for a in record["artifacts"]}
        others = [{"path": os.path.relpath(f, history_file.parent), "sha256": sha256_file(f)}
                  for f in sorted(folder.rglob("*")) if f.is_file() and not (f.parent == folder and f.name in cited)]
        result.prune.append({"run_id": record["run_id"], "seq": record["seq"], "suite": record["suite"],
                             "started_at": record["started_at"], "artifacts": record["artifacts"],
                             "other_files": others, "folder": folder,
                             "bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())})
    return result


def apply(chosen: Plan, history_file: Path, settings: dict, signer=None) -> dict | None:
    """Record the prune (chained, signed), then remove the folders; None when there was nothing to prune."""
    if not chosen.prune:
        return None
    entries = [{k: v for k, v in run.items() if k not in ("folder", "bytes")} for run in chosen.prune]
    record = {"type": "prune", "recorded_at": now_utc(), "operator": operator(), "host": platform.node(),
              **settings, "pruned": entries}
    (written,) = chain.append(history_file, record, signer)[-1:]
    for run in chosen.prune:
        shutil.rmtree(run["folder"])
    return written


def _holds_drill(folder: Path) -> bool:
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        return any(isinstance(c, dict) and c.get("drill") for c in results.get("checks", []))
    except (OSError, ValueError, AttributeError):
        return True  # cannot tell: keep it as if it did


def _inside(folder: Path, runs_dir: Path) -> bool:
    return folder.resolve().is_relative_to(runs_dir.resolve()) and folder.resolve() != runs_dir.resolve()


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
