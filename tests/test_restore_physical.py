"""The physical restore drill: pgBackRest stanzas and pg_basebackup directories restored into a scratch
data directory, started as a throwaway server, verified, stopped and removed; and every refusal."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import sandbox_environment
from opsproof.errors import ConfigError
from pgbackrest_cluster import ADMIN_PASSWORD, archived  # noqa: F401 - the module-scoped stanza fixture
from test_backup_model import load
from test_restore_drill import DRILL_KEYS

BASEBACKUP = "{of: postgres.main, format: pg_basebackup, location: /b/base-*, rpo: 24h, rto: 1h, "
PGBACKREST = "{of: postgres.main, format: pgbackrest, pgbackrest: {stanza: main}, rpo: 24h, rto: 1h, "
CUSTOM = "{of: postgres.main, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h, "


@pytest.mark.parametrize("spec, key_path, problem", [
    (BASEBACKUP + "restore_into: {scratch: true}}", "backups.db.restore_into",
     "give exactly one of dsn (a scratch database, for logical dumps) or data_dir (a scratch data directory, "
     "for pgbackrest and pg_basebackup)"),
    (PGBACKREST + "restore_into: {dsn: 'postgresql://x@h/d', data_dir: /var/tmp/drill, scratch: true}}",
     "backups.db.restore_into", "give exactly one of dsn (a scratch database, for logical dumps) or data_dir "
     "(a scratch data directory, for pgbackrest and pg_basebackup)"),
    (CUSTOM + "restore_into: {data_dir: /var/tmp/drill, scratch: true}}", "backups.db",
     "restore_into.data_dir: format pg_custom restores into a scratch database (restore_into.dsn), "
     "not a data directory"),
    (PGBACKREST + "restore_into: {dsn: 'postgresql://x@h/d', scratch: true}}", "backups.db",
     "restore_into.dsn: format pgbackrest restores into a scratch data directory (restore_into.data_dir), "
     "not a database"),
    (BASEBACKUP + "restore_into: {data_dir: var/tmp/drill, scratch: true}}", "backups.db.restore_into.data_dir",
     "must be an absolute path (starting with /)"),
])
def test_wrong_physical_restore_targets_are_rejected_with_the_key_path(tmp_path, spec, key_path, problem):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {spec}\n")
    assert (error.value.key_path, error.value.problem) == (key_path, problem)


def test_physical_restore_targets_load_and_two_sets_may_not_share_a_data_dir(tmp_path):
    loaded = load(tmp_path, f"  db: {PGBACKREST}restore_into: {{data_dir: /var/tmp/drill/db, scratch: true}}}}\n"
                            f"  base: {BASEBACKUP}restore_into: {{data_dir: /var/tmp/drill/base, scratch: true}}}}\n")
    assert loaded.environment.backups["db"].restore_into.data_dir == "/var/tmp/drill/db"
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {PGBACKREST}restore_into: {{data_dir: /var/tmp/drill, scratch: true}}}}\n"
                       f"  base: {BASEBACKUP}restore_into: {{data_dir: /var/tmp/drill/, scratch: true}}}}\n")
    assert (error.value.key_path, error.value.problem) == ("backups.base.restore_into",
                                                           "the same scratch data directory as backups.db")


# --- the drill on real servers ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def stanza(archived):
    """The archived cluster with 300 rows an hour old, then a fresh full backup of it."""
    archived.sql("CREATE TABLE IF NOT EXISTS drill_users (id serial PRIMARY KEY, created_at timestamptz NOT NULL)")
    archived.sql("TRUNCATE drill_users")
    archived.sql("INSERT INTO drill_users (created_at) SELECT now() - interval '1 hour' FROM generate_series(1, 300)")
    archived.pgbackrest("backup", "--type=full")
    return archived


@pytest.fixture
def scratch_root():
    """A parent for scratch data directories the server user can traverse (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="opsproof-drill-test-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def servers_under(path: Path) -> list[int]:
    """Pids of processes whose command line names ``path`` (a postmaster started with -D under it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path) in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def stanza_set(stanza, data_dir: Path, **extra) -> dict:
    return {"of": "postgres.archived", "format": "pgbackrest", "rpo": "24h", "rto": "5m",
            "pgbackrest": {"stanza": "demo", "config": str(stanza.config)},
            "tables": {"drill_users": {"min_rows": 300, "timestamp": "created_at"}},
            "restore_into": {"data_dir": str(data_dir), "scratch": True}, **extra}


def stanza_environment(sandbox, stanza, port: int | None = None, **sets) -> dict:
    environment = sandbox_environment(sandbox, backups=sets)
    dsn = f"postgresql://opsproof_admin@127.0.0.1:{port or stanza.port}/postgres"
    environment["postgres"]["archived"] = {"dsn": dsn, "password": ADMIN_PASSWORD, "connect_timeout_s": 2}
    return environment


def base_copy(sandbox, directory: Path, counts: dict | None = None) -> Path:
    """The sandbox's latest base backup and its counts sidecar, copied into ``directory``."""
    source = sorted(p for p in Path(sandbox.variables["SANDBOX_BACKUP_DIR"]).glob("base-*") if p.is_dir())[-1]
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, directory / source.name, symlinks=True)
    sidecar = json.loads(Path(f"{source}.counts.json").read_text())
    sidecar["tables"].update(counts or {})
    (directory / f"{source.name}.counts.json").write_text(json.dumps(sidecar))
    return directory / source.name


def base_set(directory: Path, data_dir: Path, **extra) -> dict:
    return {"of": "postgres.main", "format": "pg_basebackup", "location": f"{directory}/base-*", "rpo": "24h",
            "rto": "5m", "tables": {"users": {"min_rows": 500, "timestamp": "created_at"}},
            "restore_into": {"data_dir": str(data_dir), "scratch": True}, **extra}


def drill_of(run, name: str) -> dict:
    return run.record("test_latest_backup_restores_and_verifies_within_rto", name)


def test_pgbackrest_drill_restores_starts_verifies_and_removes_the_copy(sandbox, stanza, scratch_root, write_env,
                                                                       run_checks):
    data_dir = scratch_root / "repo"
    run = run_checks(write_env(stanza_environment(sandbox, stanza, repo=stanza_set(stanza, data_dir))),
                     "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.ret == 0, run.output
    record = drill_of(run, "repo")["drill"]
    assert set(record) == DRILL_KEYS and record["outcome"] == "passed" and record["cleanup_confirmed"] is True
    assert re.fullmatch(r"\d{8}-\d{6}F", record["backup_id"]) and record["target"] == f"{data_dir}/pgdata"
    assert record["rto_target_s"] == 300 and 0 < record["rto_achieved_s"] < 300
    assert record["rpo_target_s"] == 86400 and 3600 <= record["rpo_achieved_s"] < 2 * 3600  # the rows are 1 h old
    assert [v["measure"] for v in record["verifications"]] == [
        "restore_error", "tables_missing", "rows.drill_users", "rpo_achieved_s", "rto_achieved_s"]
    assert {"measure": "rows.drill_users", "value": 300, "op": ">=", "limit": 300, "verdict": "ok"} in (
        record["verifications"])
    assert not data_dir.exists() and not servers_under(data_dir)
    assert stanza.sql("SELECT count(*) FROM drill_users")[0][0] == 300  # the source is untouched


def test_pg_basebackup_drill_passes_with_its_counts_sidecar(sandbox, tmp_path, scratch_root, write_env, run_checks):
    backup = base_copy(sandbox, tmp_path / "base")
    data_dir = scratch_root / "base"
    run = run_checks(write_env(sandbox_environment(sandbox, backups={"base": base_set(tmp_path / "base", data_dir)})),
                     "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.ret == 0, run.output
    record = drill_of(run, "base")["drill"]
    assert record["outcome"] == "passed" and record["backup_id"] == backup.name and record["cleanup_confirmed"]
    names = {v["measure"] for v in record["verifications"]}
    assert {"rows.users", "rows.transactions", "rows.wallets", "rpo_achieved_s", "rto_achieved_s"} <= names
    assert not data_dir.exists() and not servers_under(data_dir)


def test_physical_drills_fail_on_low_rows_tight_rto_and_a_missing_wal_segment(sandbox, stanza, tmp_path, scratch_root,
                                                                             write_env, run_checks):
    broken = base_copy(sandbox, tmp_path / "no-wal")
    segment = sorted(p for p in (broken / "pg_wal").iterdir() if p.is_file())[-1]
    segment.unlink()  # a base backup taken without its WAL: it cannot become consistent
    base_copy(sandbox, tmp_path / "fewer", counts={"users": 600})
    sets = {"low-rows": stanza_set(stanza, scratch_root / "low-rows", tables={"drill_users": {"min_rows": 301}}),
            "tight-rto": stanza_set(stanza, scratch_root / "tight-rto", rto="0.01s"),
            "no-wal": base_set(tmp_path / "no-wal", scratch_root / "no-wal"),
            "fewer": base_set(tmp_path / "fewer", scratch_root / "fewer")}
    run = run_checks(write_env(stanza_environment(sandbox, stanza, **sets)),
                     "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.ret == 1
    assert drill_of(run, "low-rows")["message"] == "rows.drill_users (300) >= 301 on backups.low-rows"
    assert drill_of(run, "fewer")["message"] == "rows.users (500) >= 600 on backups.fewer"
    assert re.fullmatch(r"rto_achieved_s \(\d+\.\d+\) <= 0\.01 on backups\.tight-rto",
                        drill_of(run, "tight-rto")["message"]), drill_of(run, "tight-rto")["message"]
    assert drill_of(run, "no-wal")["message"] == (
        "restore_error ('FATAL: could not locate required checkpoint record') == 'none' on backups.no-wal")
    for name in sets:
        record = drill_of(run, name)
        assert record["outcome"] == "failed" and record["drill"]["cleanup_confirmed"] is True, name
        assert not (scratch_root / name).exists() and not servers_under(scratch_root / name), name


def test_pgbackrest_drill_fails_on_a_file_missing_from_the_repository(sandbox, stanza, scratch_root, write_env,
                                                                      run_checks, monkeypatch):
    monkeypatch.setenv("PGBACKREST_JOB_RETRY", "0")  # not its default 2 retries, 15 s apart, for a file that is gone
    latest = sorted((stanza.root / "repo" / "backup" / "demo").glob("*F"))[-1]
    victim = sorted((latest / "pg_data" / "base" / "1").iterdir(), key=lambda p: p.stat().st_size)[-1]
    aside = stanza.root / "aside"
    shutil.move(victim, aside)
    try:
        run = run_checks(write_env(stanza_environment(sandbox, stanza, repo=stanza_set(stanza, scratch_root / "r"))),
                         "--suite", "backup", "--allow-destructive", "-k", "restores")
    finally:
        shutil.move(aside, victim)
    record = drill_of(run, "repo")
    assert run.ret == 1 and record["drill"]["cleanup_confirmed"] is True
    assert record["message"] == (
        f"restore_error (\"ERROR: [055]: raised from local-1 protocol: unable to open missing file '{victim}' for "
        f"read\") == 'none' on backups.repo")
    assert not (scratch_root / "r").exists()


# --- refusals -----------------------------------------------------------------------------------------------

def refusal_of(write_env, environment: dict, name: str) -> str | None:
    from opsproof.backups.restore import refusal
    from opsproof.environment import load_environment

    loaded = load_environment(write_env(environment),
                              {"TEST_PG_PASSWORD": "placeholder", "TEST_REDIS_PASSWORD": "placeholder"})
    return refusal(loaded.environment, loaded.environment.backups[name])


def test_physical_drill_refusals(sandbox, stanza, tmp_path, scratch_root, refused_port, write_env):
    base_copy(sandbox, tmp_path / "base")
    occupied = scratch_root / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("not the drill's")
    previous = scratch_root / "previous"
    previous.mkdir()
    (previous / ".opsproof-drill").write_text("")
    (previous / "leftover").write_text("")
    repo = "backups.r restore_into.data_dir"
    source = os.path.realpath(stanza.data_dir)
    with pytest.raises(ConfigError, match="backups.r.restore_into: environment under-test is tier production"):
        refusal_of(write_env, {**stanza_environment(sandbox, stanza, r=stanza_set(stanza, scratch_root / "d")),
                               "tier": "production"}, "r")  # refused at load, before any run
    cases = [
        ({}, {**stanza_set(stanza, scratch_root / "d"), "restore_into": {"data_dir": str(scratch_root / "d")}}, None,
         "restore refused: backups.r restore_into is not declared scratch: true"),
        ({}, stanza_set(stanza, stanza.data_dir / "drill"), None,
         f"restore refused: {repo} {stanza.data_dir}/drill is inside the source's data_directory {source}"),
        ({}, stanza_set(stanza, stanza.data_dir), refused_port,  # source down: pgbackrest.conf still says pg1-path
         f"restore refused: {repo} {stanza.data_dir} is the stanza's pg1-path {source}"),
        ({}, stanza_set(stanza, stanza.root), None,
         f"restore refused: {repo} {stanza.root} contains the repository path (repo1-path) {stanza.root}/repo"),
        ({}, stanza_set(stanza, stanza.root / "repo" / "x"), None,
         f"restore refused: {repo} {stanza.root}/repo/x is inside the repository path (repo1-path) "
         f"{stanza.root}/repo"),
        ({}, base_set(tmp_path / "base", tmp_path / "base" / "x"), None,
         f"restore refused: {repo} {tmp_path}/base/x is inside the backups location {tmp_path}/base"),
        ({}, stanza_set(stanza, occupied), None,
         f"restore refused: {repo} {occupied} is not empty and holds no .opsproof-drill marker: it is not a "
         f"previous drill's directory"),
        ({}, stanza_set(stanza, previous), None, None),
    ]
    for overrides, spec, port, expected in cases:
        environment = {**stanza_environment(sandbox, stanza, port, r=spec), **overrides}
        assert refusal_of(write_env, environment, "r") == expected, spec["restore_into"]
    assert (occupied / "precious.txt").exists()


def test_refused_physical_drill_fails_and_leaves_the_directory(sandbox, stanza, scratch_root, write_env, run_checks):
    occupied = scratch_root / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("not the drill's")
    run = run_checks(write_env(stanza_environment(sandbox, stanza, r=stanza_set(stanza, occupied))),
                     "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.ret == 1
    assert drill_of(run, "r")["message"] == (
        f"DestructiveRefused: restore refused: backups.r restore_into.data_dir {occupied} is not empty and holds "
        f"no .opsproof-drill marker: it is not a previous drill's directory")
    assert (occupied / "precious.txt").read_text() == "not the drill's"


def test_a_previous_drills_leftovers_are_emptied_and_removed(sandbox, stanza, scratch_root, write_env, run_checks):
    previous = scratch_root / "previous"
    (previous / "pgdata").mkdir(parents=True)
    (previous / ".opsproof-drill").write_text("")
    (previous / "pgdata" / "PG_VERSION").write_text("15\n")
    run = run_checks(write_env(stanza_environment(sandbox, stanza, r=stanza_set(stanza, previous))),
                     "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.ret == 0, run.output
    assert not previous.exists()
