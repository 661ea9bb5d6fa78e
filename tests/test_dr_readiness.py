"""The readiness report per drilled system: when each was last drilled, and whether that drill met its RTO and RPO."""

from __future__ import annotations

from datetime import timedelta

from test_readiness import NOW, add_run, check, doc_for, drill, project  # noqa: F401 - project is a fixture

from opsproof.readiness import render


def dr_drill(when, outcome: str, rto_s: float, rpo_s: float | None, systems: list[str], **extra) -> dict:
    return {"kind": "dr", "scenario": "failover", "systems": systems, "started_at": when.isoformat(),
            "finished_at": when.isoformat(), "rto_target_s": 300, "rto_achieved_s": rto_s, "rpo_target_s": 0,
            "rpo_achieved_s": rpo_s, "outcome": outcome, "confirmed_by": "alice (--allow-destructive ...)",
            **extra}


def test_each_system_shows_its_latest_drill_and_whether_it_met_rto_and_rpo(project):  # noqa: F811
    _, path = project
    reports = path.parent.parent
    older, newer = NOW - timedelta(days=20), NOW - timedelta(days=2)
    add_run(reports, older, "dr", [check("test_dr_drill_completes_every_step", drill=dr_drill(
        older, "passed", 42.0, 0.0, ["postgres.main", "postgres.standby", "http.api"]))], schema_version=2)
    add_run(reports, newer, "dr", [check("test_dr_drill_completes_every_step", "failed", drill=dr_drill(
        newer, "failed", 61.5, None, ["postgres.main", "postgres.standby"], game_day=True,
        approver="Head of Ops"))], schema_version=2)
    doc = doc_for(project)
    rows = {row["system"]: row for row in doc["drilled_systems"]}
    assert list(rows) == ["backup set nightly", "http.api", "postgres.main", "postgres.standby"]
    assert (rows["http.api"]["at"], rows["http.api"]["rto_met"], rows["http.api"]["rpo_met"]) == (
        older.isoformat(), True, True)
    assert (rows["postgres.main"]["at"], rows["postgres.main"]["outcome"]) == (newer.isoformat(), "failed")
    assert (rows["postgres.main"]["rto_met"], rows["postgres.main"]["rpo_met"]) == (True, False)
    restore = rows["backup set nightly"]  # a record from before systems were recorded names its subject
    assert (restore["kind"], restore["rto_met"], restore["rpo_met"]) == ("restore", True, True)
    markdown = render(doc, "md")
    assert (f"| postgres.main | {newer.isoformat()} | scenario failover | failed | yes (61.5 s of 300.0 s) | no "
            "(n/a of 0.0 s) |") in markdown
    page = render(doc, "html")
    assert 'id="drilled-systems"' in page and "game day approved by Head of Ops" in page
