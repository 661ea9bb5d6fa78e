"""Compose the readiness document (a plain dict) from the history and the results.json files it cites.

Nothing here renders: the same dict becomes HTML, Markdown or JSON. What is missing is stated as a
sentence in ``missing`` rather than left out, and a broken history chain is the first thing said.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path

import yaml

from opsproof import history, waivers
from opsproof.record import DrillRecord, Measurement, described

SUITES = ("smoke", "nightly", "backup", "dr")
RESTORE_DRILL_MAX_AGE_DAYS = 31
DR_DRILL_MAX_AGE_DAYS = 365


def controls() -> list[dict]:
    return yaml.safe_load(resources.files("opsproof.readiness").joinpath("controls.yaml").read_text())


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _artifacts(base: Path, record: dict, pruned: set[str]) -> list[dict]:
    shown = []
    for artifact in record.get("artifacts", []):
        file = base / artifact["path"]
        if not file.is_file():
            status = "pruned under retention" if artifact["path"] in pruned else "missing"
        else:
            status = "verified" if history.sha256_file(file) == artifact["sha256"] else "MISMATCH"
        shown.append({**artifact, "status": status})
    return shown


def _results(base: Path, record: dict) -> dict | None:
    for artifact in record.get("artifacts", []):
        if artifact["name"] == "results.json" and (base / artifact["path"]).is_file():
            try:
                return json.loads((base / artifact["path"]).read_text(encoding="utf-8"))
            except ValueError:
                return None
    return None


def _counts(record: dict) -> dict:
    counts = record.get("counts", {})
    return {"passed": counts.get("passed", 0), "warned": counts.get("warned", 0),
            "failed": counts.get("failed", 0) + counts.get("error", 0), "waived": counts.get("waived", 0),
            "skipped": counts.get("skipped", 0)}


def compose(settings: dict, env_file: Path, history_file: Path, since: date | None = None,
            now: datetime | None = None, source=None) -> dict:
    """``source`` (``opsproof.history.commands.Source``) says where the runs live and which key to trust;
    records that do not verify (edited, forged, unsigned after signed ones) are left out of the evidence."""
    now = now or datetime.now(timezone.utc)
    since = since or (now - timedelta(days=90)).date()
    base = history_file.parent
    check = source.verify() if source is not None else history.verify(history_file)
    records = history.trusted_runs(history_file, check)
    pruned = history.pruned_artifacts(history.read(history_file))
    loaded = [(r, _results(base, r)) for r in records]
    in_period = [(r, res) for r, res in loaded if _started_on_or_after(r, since)]

    suites = []
    order = {name: n for n, name in enumerate(SUITES)}
    for suite in sorted({r["suite"] for r, _ in in_period}, key=lambda s: (order.get(s, len(SUITES)), s)):
        runs = [r for r, _ in in_period if r["suite"] == suite]
        latest = runs[-1]
        suites.append({"suite": suite, "runs": len(runs),
                       "latest": {k: latest.get(k) for k in ("run_id", "started_at", "finished_at", "verdict",
                                                            "operator", "git_revision", "exit_code")},
                       "trend": [{"run_id": r["run_id"], "started_at": r["started_at"], **_counts(r)} for r in runs]})

    latest_checks: dict[str, dict] = {}
    drills: dict[str, dict] = {}
    systems: dict[str, dict] = {}
    unreadable: list[str] = []
    waived_ids: set[str] = set()
    for record, results in loaded:
        for result in (results or {}).get("checks", []):
            drill = _drill(result, results.get("schema_version", 1), record, unreadable)
            shown = drills.get(drill.kind) if drill else None
            # the latest run's drill of each kind; of several in one run (several backup sets), a failed one
            if drill and (shown is None or shown["run_id"] != record["run_id"] or shown["outcome"] == "passed"):
                drills[drill.kind] = {**drill.to_dict(), "subject": drill.subject, "run_id": record["run_id"],
                                      "check": result["id"], "check_outcome": result["outcome"]}
            if drill:
                for system in drill.systems or [drill.subject]:
                    systems[system] = _drilled(system, drill, record["run_id"])
            if not _started_on_or_after(record, since):
                continue
            if result.get("waiver"):
                waived_ids.add(result["waiver"]["check"])
            latest_checks[result["id"]] = {
                "id": result["id"], "suite": record["suite"], "run_id": record["run_id"],
                "at": record["started_at"], "outcome": result["outcome"], "severity": result.get("severity"),
                "where": result.get("where"), "message": result.get("message", ""),
                "measurements": described([Measurement.model_validate(m) for m in result.get("measurements", [])],
                                          result.get("message", "")),
                "waiver": result.get("waiver"),
            }

    today = now.date()
    waiver_file = waivers_path_or_none(settings, env_file)
    waiver_list = waivers.load(waiver_file) if waiver_file else []
    waiver_view = {
        "file": str(waiver_file) if waiver_file else None,
        "open": [w.shown() for w in waiver_list if w.expires >= today],
        "expired": [w.shown() for w in waiver_list if w.expires < today],
        "stale": [w.shown() for w in waiver_list if w.expires >= today and w.check not in waived_ids],
    }

    missing = unreadable + _missing(drills, suites, now)
    control_rows = _controls(latest_checks, drills, suites, now)
    runs = [{k: r.get(k) for k in ("seq", "run_id", "suite", "started_at", "finished_at", "operator", "host",
                                    "git_revision", "verdict", "hash")} | {"artifacts": _artifacts(base, r, pruned)}
            for r, _ in in_period]
    return {
        "title": f"Operational readiness: {settings['name']}",
        "generated_at": now.isoformat(timespec="seconds"),
        "period": {"since": since.isoformat(), "until": today.isoformat()},
        "environment": {"name": settings["name"], "tier": settings.get("tier"),
                        "description": settings.get("description") or "", "file": str(env_file)},
        "history": {"path": source.label if source is not None else str(history_file), "records": check.records,
                    "ok": check.ok, "problems": check.problems, "notes": check.notes,
                    "signing": check.signing_line(), "keys": check.keys, "pinned": list(check.trust.fingerprints)},
        "suites": suites,
        "checks": sorted(latest_checks.values(), key=lambda c: c["id"]),
        "drills": {"restore": drills.get("restore"), "dr": drills.get("dr")},
        "drilled_systems": [systems[name] for name in sorted(systems)],
        "waivers": waiver_view,
        "controls": control_rows,
        "runs": runs,
        "missing": missing,
        "signoff": [{"role": role} for role in ("Prepared by", "Reviewed by", "Approved by")],
    }


def _drill(result: dict, schema_version: int, record: dict, unreadable: list[str]) -> DrillRecord | None:
    """The drill a check recorded, in this version's shape; one that cannot be read is said, not skipped silently."""
    if not result.get("drill"):
        return None
    try:
        return DrillRecord.read(result["drill"], schema_version)
    except ValueError as error:  # pydantic's ValidationError: a results.json edited or written by something else
        unreadable.append(f"the drill record of {result.get('id')} in run {record.get('run_id')} cannot be read: "
                          f"{str(error).splitlines()[0]}")
        return None


def _met(achieved: float | None, target: float | None) -> bool | None:
    """Whether a drill met its RTO or RPO; None when it declared none."""
    return None if target is None else achieved is not None and achieved <= target


def _drilled(system: str, drill: DrillRecord, run_id: str) -> dict:
    """One system's latest drill: when, which, and whether it met its RTO and RPO."""
    return {"system": system, "drill": drill.subject, "kind": drill.kind, "run_id": run_id,
            "at": drill.finished_at or drill.started_at, "outcome": drill.outcome,
            "rto_target_s": drill.rto_target_s, "rto_achieved_s": drill.rto_achieved_s,
            "rto_met": _met(drill.rto_achieved_s, drill.rto_target_s),
            "rpo_target_s": drill.rpo_target_s, "rpo_achieved_s": drill.rpo_achieved_s,
            "rpo_met": _met(drill.rpo_achieved_s, drill.rpo_target_s)}


def waivers_path_or_none(settings: dict, env_file: Path) -> Path | None:
    return waivers.waivers_path(env_file, settings["name"], settings.get("waivers_file"))


def _age_days(text: str | None, now: datetime) -> float | None:
    return (now - _when(text)).total_seconds() / 86400 if text else None


def _missing(drills: dict, suites: list[dict], now: datetime) -> list[str]:
    missing = []
    for kind, label, max_age in (("restore", "restore drill", RESTORE_DRILL_MAX_AGE_DAYS),
                                 ("dr", "DR drill", DR_DRILL_MAX_AGE_DAYS)):
        drill = drills.get(kind)
        if drill is None:
            missing.append(f"no {label} on record")
            continue
        age = _age_days(drill.get("finished_at") or drill.get("started_at"), now)
        if age is None or age > max_age:
            missing.append(f"no {label} in the last {max_age} days")
        if drill.get("outcome") != "passed":
            where = f" at step {drill['failed_step']}" if drill.get("failed_step") else ""
            missing.append(f"the latest {label} did not pass ({drill.get('outcome')}{where})")
    seen = {s["suite"]: s for s in suites}
    for suite in SUITES:
        if suite not in seen:
            missing.append(f"no {suite} run in the period")
        elif not sum(seen[suite]["trend"][-1][k] for k in ("passed", "warned", "failed", "waived", "skipped")):
            missing.append(f"the latest {suite} run had no checks")
    return missing


def _controls(checks: dict, drills: dict, suites: list[dict], now: datetime) -> list[dict]:
    rows = []
    suite_latest = {s["suite"]: s["latest"] for s in suites}
    for control in controls():
        evidence = [c for c in checks.values() if any(fnmatchcase(c["id"], p) for p in control.get("checks", []))]
        fresh_drills = [k for k in control.get("drills", []) if drills.get(k) and
                        (_age_days(drills[k].get("finished_at"), now) or 1e9) <= control["max_age_days"]]
        runs = [s for s in control.get("suites", []) if s in suite_latest]
        failing = [c["id"] for c in evidence if c["outcome"] in ("failed", "error")]
        if failing:
            status = "failing"
        elif evidence or fresh_drills:
            status = "evidenced"
        else:
            status = "no evidence"
        rows.append({**control, "status": status, "evidence": [f"{c['id']}: {c['outcome']}" for c in evidence],
                     "fresh_drills": fresh_drills, "suite_runs": runs})
    return rows


def _started_on_or_after(record: dict, since) -> bool:
    """A record whose start time is missing or unreadable is left out (history verify names it)."""
    try:
        return _when(record["started_at"]).date() >= since
    except (KeyError, TypeError, ValueError):
        return False
