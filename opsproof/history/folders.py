"""Run folders beside a history that no record cites: how a removed last record or an emptied history shows."""

from __future__ import annotations

import json
import os
from pathlib import Path

from opsproof.history import schema


def unrecorded_folders(history_file: Path, records: list[dict], runs_dir: Path | None = None) -> list[tuple[str, Path]]:
    """Run folders (with a results.json) beside the recorded ones, or in ``runs_dir``, that no record cites,
    as (path relative to the history, folder): how a removed *last* record, or an emptied history, shows."""
    base = history_file.parent
    cited = {(base / a["path"]).parent.resolve() for r in records if schema.is_run(r) for a in r["artifacts"]}
    began = min((r["started_at"] for r in records if schema.is_run(r)), default=None)
    parents = {folder.parent for folder in cited} | ({runs_dir.resolve()} if runs_dir and runs_dir.is_dir() else set())
    found = []
    for parent in sorted(p for p in parents if p.is_dir()):
        for folder in sorted(parent.iterdir()):
            if (folder / "results.json").is_file() and folder.resolve() not in cited and _after(folder, began):
                found.append((os.path.relpath(folder, base), folder))
    return found


def _after(folder: Path, began: str | None) -> bool:
    """Runs from before the history began (older reports) are not evidence of a removed record."""
    try:
        started = json.loads((folder / "results.json").read_text(encoding="utf-8"))["started_at"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return began is None or not isinstance(started, str) or started >= began
