"""The restore drill against the sandbox: restores, verifies, times and cleans up; refuses unsafe targets."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import sandbox_environment
from opsproof.backups.location import LocalLocation
from opsproof.backups.restore import Drill
from opsproof.environment.backups import BackupTarget

DRILL_KEYS = {"kind", "scenario", "backup_set", "backup_id", "backup_time", "target", "started_at", "finished_at",
              "rto_target_s", "rto_achieved_s", "rpo_target_s", "rpo_achieved_s", "verifications", "steps", "rollback",
              "failed_step", "error", "cleanup_confirmed", "previous_leftovers", "cleanup_left", "outcome",
              "confirmed_by", "systems", "game_day", "approver", "overhead_s", "outage_started_at",
              "newest_data_before", "newest_data_after"}  # one drill record (opsproof.record.DrillRecord)
TABLES = {"users": {"min_rows": 500, "timestamp": "created_at"}, "transactions": {"min_rows": 5000}}


@pytest.fixture(autouse=True)
def admin_password(monkeypatch, sandbox):
    monkeypatch.setenv("TEST_PG_ADMIN_PASSWORD", sandbox.pg_admin_password)


def scratch(sandbox, database: str, **extra) -> dict:
    return {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{sandbox.pg_port}/{database}",
            "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True, **extra}


def drill_set(directory: Path, pattern: str, format: str, into: dict, **extra) -> dict:
    return {"of": "postgres.main", "location": str(directory / pattern), "format": format, "rpo": "24h",
            "rto": "5m", "tables": TABLES, "restore_into": into, **extra}


def copy_backup(sandbox, pattern: str, directory: Path, data: bytes | None = None, counts: dict | None = None) -> Path:
    """The sandbox's latest backup (and its row-count sidecar) copied, or replaced by ``data``."""
    source = sorted(Path(sandbox.variables["SANDBOX_BACKUP_DIR"]).glob(pattern))[-1]
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    target.write_bytes(source.read_bytes() if data is None else data)
    sidecar = json.loads(Path(f"{source}.counts.json").read_text())
    if counts is not None:
        sidecar["tables"].update(counts)
    Path(f"{target}.counts.json").write_text(json.dumps(sidecar))
    return source


def admin(sandbox, database: str = "postgres"):
    return psycopg.connect(host="127.0.0.1", port=sandbox.pg_port, user="opsproof_admin", dbname=database,
                           password=sandbox.pg_admin_password, autocommit=True)


def databases(sandbox) -> set[str]:
    with admin(sandbox) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def drill_of(run, name: str) -> dict:
    return run.record("test_latest_backup_restores_and_verifies_within_rto", name)


def test_drill_restores_custom_and_plain_dumps_and_records_it(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "*.dump", tmp_path / "custom")
    source = copy_backup(sandbox, "bankchain-*.sql.gz", tmp_path / "plain")
    invariants = {"orphaned_wallets": {"sql": "SELECT count(*) FROM wallets w LEFT JOIN users u ON u.id = w.user_id "
                                              "WHERE u.id IS NULL", "max": 0}}
    sets = {"custom": drill_set(tmp_path / "custom", "*.dump", "pg_custom", scratch(sandbox, "drill_custom"),
                                invariants=invariants),
            "plain": drill_set(tmp_path / "plain", "*.sql.gz", "pg_plain_gz", scratch(sandbox, "drill_plain"))}
    run = run_checks(write_env(sandbox_environment(sandbox, backups=sets)), "--suite", "backup",
                     "--allow-destructive", "-k", "restores")
    assert run.ret == 0, run.output
    custom, plain = drill_of(run, "custom"), drill_of(run, "plain")
    assert custom["outcome"] == plain["outcome"] == "passed"
    record = plain["drill"]
    assert set(record) == DRILL_KEYS
    assert record["kind"] == "restore" and record["outcome"] == "passed" and record["cleanup_confirmed"] is True
    assert record["backup_set"] == "plain" and record["backup_id"] == source.name
    assert record["target"] == f"127.0.0.1:{sandbox.pg_port}/drill_plain"
    assert record["rto_target_s"] == 300 and 0 < record["rto_achieved_s"] < 300
    assert record["rpo_target_s"] == 86400 and 0 < record["rpo_achieved_s"] < 2 * 3600  # newest user: ~1 h old
    names = [v["measure"] for v in record["verifications"]]
    assert names[:2] == ["restore_error", "tables_missing"] and names[-2:] == ["rpo_achieved_s", "rto_achieved_s"]
    assert {"measure": "rows.users", "value": 500, "op": ">=", "limit": 500, "verdict": "ok"} in record["verifications"]
    assert {v["verdict"] for v in record["verifications"]} == {"ok"}
    assert {"measure": "invariant.orphaned_wallets", "value": 0.0, "op": "<=", "limit": 0.0, "verdict": "ok"} in (
        custom["drill"]["verifications"])
    assert [(s["name"], s["outcome"]) for s in record["steps"]] == [
        ("find_latest", "passed"), ("restore", "passed"), ("verify", "passed"), ("clean_up", "passed")]
    assert record["steps"][0]["detail"] == source.name and all(s["duration_s"] >= 0 for s in record["steps"])
    assert record["rollback"] == [] and record["failed_step"] is None and record["scenario"] is None
    assert record["confirmed_by"].endswith(" (--allow-destructive)")
    assert not {"drill_custom", "drill_plain"} & databases(sandbox)


def _dump_with_error_in_the_middle(sandbox) -> bytes:
    plain = sorted(Path(sandbox.variables["SANDBOX_BACKUP_DIR"]).glob("bankchain-*.sql.gz"))[-1]
    text = gzip.decompress(plain.read_bytes()).decode()
    middle = text.index("\\.\n", len(text) // 2) + 3  # just after a COPY block ends
    return gzip.compress((text[:middle] + "\nSELECT no_such_function();\n" + text[middle:]).encode())


def test_drill_fails_on_restore_error_missing_table_low_rows_and_rto(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "bankchain-*.sql.gz", tmp_path / "error", data=_dump_with_error_in_the_middle(sandbox))
    for name in ("missing-table", "low-rows", "fewer-than-recorded", "tight-rto"):
        counts = {"users": 550} if name == "fewer-than-recorded" else None
        copy_backup(sandbox, "*.dump", tmp_path / name, counts=counts)
    (next((tmp_path / "low-rows").glob("*.counts.json"))).unlink()  # judged against the minimums instead
    sets = {
        "error": drill_set(tmp_path / "error", "*.sql.gz", "pg_plain_gz", scratch(sandbox, "drill_error")),
        "missing-table": drill_set(tmp_path / "missing-table", "*.dump", "pg_custom", scratch(sandbox, "drill_mt"),
                                   tables={**TABLES, "ledger_entries": {"min_rows": 1}}),
        "low-rows": drill_set(tmp_path / "low-rows", "*.dump", "pg_custom", scratch(sandbox, "drill_lr"),
                              tables={"users": {"min_rows": 600}}),
        "fewer-than-recorded": drill_set(tmp_path / "fewer-than-recorded", "*.dump", "pg_custom",
                                         scratch(sandbox, "drill_fr"), row_count_tolerance_pct=5),
        "tight-rto": drill_set(tmp_path / "tight-rto", "*.dump", "pg_custom", scratch(sandbox, "drill_rto"),
                               rto="0.01s"),
    }
    run = run_checks(write_env(sandbox_environment(sandbox, backups=sets)), "--suite", "backup",
                     "--allow-destructive", "-k", "restores")
    assert run.ret == 1
    error = drill_of(run, "error")
    assert re.fullmatch(r"restore_error \('psql:<stdin>:\d+: ERROR:  function no_such_function\(\) does not exist'\) "
                        r"== 'none' on backups\.error", error["message"]), error["message"]
    assert drill_of(run, "missing-table")["message"] == (
        "tables_missing (['ledger_entries']) == [] on backups.missing-table")
    assert drill_of(run, "low-rows")["message"] == "rows.users (500) >= 600 on backups.low-rows"
    assert drill_of(run, "fewer-than-recorded")["message"] == "rows.users (500) >= 523 on backups.fewer-than-recorded"
    assert re.fullmatch(r"rto_achieved_s \(\d+\.\d+\) <= 0\.01 on backups\.tight-rto",
                        drill_of(run, "tight-rto")["message"]), drill_of(run, "tight-rto")["message"]
    for name in sets:
        record = drill_of(run, name)
        assert record["outcome"] == "failed" and record["gating"]
        assert record["drill"]["outcome"] == "failed" and record["drill"]["cleanup_confirmed"] is True
    assert not {"drill_error", "drill_mt", "drill_lr", "drill_fr", "drill_rto"} & databases(sandbox)


def test_drill_is_refused_without_allow_destructive(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    sets = {"db": drill_set(tmp_path / "db", "*.dump", "pg_custom", scratch(sandbox, "drill_refused"))}
    run = run_checks(write_env(sandbox_environment(sandbox, backups=sets)), "--suite", "backup", "-k", "restores")
    record = drill_of(run, "db")
    assert run.ret == 0 and record["outcome"] == "skipped" and not record["gating"]
    assert record["message"] == "destructive check: needs --allow-destructive and a scratch target"


def test_drill_is_refused_in_a_production_environment(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    sets = {"db": drill_set(tmp_path / "db", "*.dump", "pg_custom", scratch(sandbox, "drill_refused"))}
    environment = {**sandbox_environment(sandbox, backups=sets), "tier": "production"}
    run = run_checks(write_env(environment), "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.result.ret == 4  # refused when the file loads: nothing runs, nothing is written
    assert "backups.db.restore_into: environment under-test is tier production, which is read-only" in \
        run.result.stderr.str()


def test_drill_refuses_a_target_not_scratch_or_the_source_itself(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    source_into = {"dsn": sandbox.pg_dsn.replace("127.0.0.1", "localhost"), "password": "${TEST_PG_PASSWORD}",
                   "scratch": True}
    sets = {"not-scratch": drill_set(tmp_path / "db", "*.dump", "pg_custom",
                                     scratch(sandbox, "drill_refused", scratch=False)),
            "into-source": drill_set(tmp_path / "db", "*.dump", "pg_custom", source_into),
            "into-other": drill_set(tmp_path / "db", "*.dump", "pg_custom", scratch(sandbox, "reporting"))}
    environment = sandbox_environment(sandbox, backups=sets)
    environment["postgres"]["reporting"] = {"dsn": f"postgresql://bankchain@127.0.0.1:{sandbox.pg_port}/reporting",
                                            "password": "${TEST_PG_PASSWORD}"}
    with admin(sandbox) as conn:
        conn.execute("CREATE DATABASE reporting OWNER bankchain")
    try:
        run = run_checks(write_env(environment), "--suite", "backup", "--allow-destructive", "-k", "restores")
        with admin(sandbox) as conn:
            sysid = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
            oids = dict(conn.execute("SELECT datname, oid FROM pg_database "
                                     "WHERE datname IN ('bankchain', 'reporting')"))
    finally:
        with admin(sandbox) as conn:
            conn.execute("DROP DATABASE IF EXISTS reporting WITH (FORCE)")
    assert run.ret == 1
    assert drill_of(run, "not-scratch")["message"] == (
        "DestructiveRefused: restore refused: backups.not-scratch restore_into is not declared scratch: true")
    assert drill_of(run, "into-source")["message"] == (
        "DestructiveRefused: restore refused: backups.into-source restore_into is the source postgres.main itself: "
        f"both are database bankchain (oid {oids['bankchain']}) of cluster {sysid}")
    assert drill_of(run, "into-other")["message"] == (
        "DestructiveRefused: restore refused: backups.into-other restore_into is postgres.reporting, a target this "
        f"environment checks: both are database reporting (oid {oids['reporting']}) of cluster {sysid}")
    assert "drill_refused" not in databases(sandbox)
    with psycopg.connect(sandbox.pg_dsn, password=sandbox.pg_password) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 500


class _InterruptedDrill(Drill):
    """A drill whose operator presses Ctrl-C while the restored data is being verified."""

    def _check_data(self, scratch, latest):
        assert self.backup.restore_into.dsn.endswith("/drill_interrupted") and scratch.exists()
        raise KeyboardInterrupt


def test_interrupted_drill_still_drops_the_scratch_database(sandbox, tmp_path):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    into = scratch(sandbox, "drill_interrupted", password=sandbox.pg_admin_password)
    target = BackupTarget.model_validate({**drill_set(tmp_path / "db", "*.dump", "pg_custom", into), "name": "db"})
    drill = _InterruptedDrill(target, LocalLocation(target.location), sandbox.pg_admin_password)
    with pytest.raises(KeyboardInterrupt):
        drill.run()
    assert "drill_interrupted" not in databases(sandbox)
    assert [v.measure for v in drill.verifications] == ["restore_error"]
    shutil.rmtree(tmp_path / "db")
