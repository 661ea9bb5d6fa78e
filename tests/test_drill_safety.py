"""A restore drill must never be the incident: it refuses the source however it is spelled, keeps secrets off
command lines, and a drill killed mid-way leaves nothing the next one deletes under a live process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pymysql
import pytest
import yaml

from conftest import ROOT, sandbox_environment
from opsproof.processes import alive, identity
from test_restore_drill import admin, copy_backup, drill_of, drill_set
from test_restore_physical import base_copy, base_set, servers_under

# Every spelling below reached the sandbox's 127.0.0.1 listener before identities were compared.
ALIASES = {"short": "127.1", "any": "0.0.0.0", "mapped": "[::ffff:127.0.0.1]", "hostname": socket.gethostname(),
           "percent": "%31%32%37.0.0.1"}


@pytest.fixture(autouse=True)
def passwords(monkeypatch, sandbox):
    monkeypatch.setenv("TEST_PG_ADMIN_PASSWORD", sandbox.pg_admin_password)
    monkeypatch.setenv("TEST_PG_PASSWORD", sandbox.pg_password)
    monkeypatch.setenv("TEST_REDIS_PASSWORD", sandbox.redis_password)
    for name in ("PASSWORD", "ADMIN_PASSWORD"):
        if f"SANDBOX_MYSQL_{name}" in sandbox.variables:
            monkeypatch.setenv(f"TEST_MYSQL_{name}", sandbox.variables[f"SANDBOX_MYSQL_{name}"])


@pytest.fixture
def scratch_root():
    """A parent for scratch data directories the server user can traverse (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="opsproof-safety-test-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def cluster_facts(sandbox) -> tuple[int, int, int]:
    """The sandbox cluster's system_identifier, bankchain's OID and its users row count."""
    with admin(sandbox, "bankchain") as conn:
        sysid = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = 'bankchain'").fetchone()[0]
        return sysid, oid, conn.execute("SELECT count(*) FROM users").fetchone()[0]


def mysql_dump_copy(sandbox, directory: Path) -> str:
    """The sandbox's latest mysqldump copied into ``directory``; returns the set's location glob."""
    directory.mkdir(parents=True, exist_ok=True)
    latest = max(Path(sandbox.variables["SANDBOX_BACKUP_DIR"]).glob("mysql-*.sql.gz"))
    shutil.copy(latest, directory)
    return str(directory / "mysql-*.sql.gz")


def refusal_of(write_env, environment: dict, name: str) -> str | None:
    from opsproof.backups.restore import refusal
    from opsproof.environment import load_environment

    loaded = load_environment(write_env(environment), dict(os.environ))
    return refusal(loaded.environment, loaded.environment.backups[name])


# --- 1. the source, however it is spelled ---------------------------------------------------------------------

def test_every_alias_of_the_source_is_refused_and_the_source_survives(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    sysid, oid, users = cluster_facts(sandbox)
    sets = {name: drill_set(tmp_path / "db", "*.dump", "pg_custom", {
        "dsn": f"postgresql://opsproof_admin@{host}:{sandbox.pg_port}/bankchain",
        "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}) for name, host in ALIASES.items()}
    run = run_checks(write_env(sandbox_environment(sandbox, backups=sets)), "--suite", "backup",
                     "--allow-destructive", "-k", "restores")
    assert run.ret == 1
    for name in ALIASES:
        assert drill_of(run, name)["message"] == (
            f"DestructiveRefused: restore refused: backups.{name} restore_into is the source postgres.main itself: "
            f"both are database bankchain (oid {oid}) of cluster {sysid}"), name
    assert cluster_facts(sandbox) == (sysid, oid, users) == (sysid, oid, 500)  # not dropped, not recreated


def test_another_target_of_the_environment_is_refused_through_an_alias(sandbox, tmp_path, write_env, run_checks):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    with admin(sandbox) as conn:
        conn.execute("CREATE DATABASE ledger_copy")
    try:
        with admin(sandbox, "ledger_copy") as conn:
            conn.execute("CREATE TABLE canary (id int)")
            conn.execute("INSERT INTO canary VALUES (1), (2), (3)")
            oid = conn.execute("SELECT oid FROM pg_database WHERE datname = 'ledger_copy'").fetchone()[0]
        into = {"dsn": f"postgresql://opsproof_admin@127.1:{sandbox.pg_port}/ledger_copy",
                "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}
        environment = sandbox_environment(sandbox, backups={"db": drill_set(tmp_path / "db", "*.dump", "pg_custom",
                                                                            into)})
        environment["postgres"]["ledger"] = {"dsn": f"postgresql://opsproof_admin@localhost:{sandbox.pg_port}/"
                                                    f"ledger_copy", "password": "${TEST_PG_ADMIN_PASSWORD}"}
        run = run_checks(write_env(environment), "--suite", "backup", "--allow-destructive", "-k", "restores")
        sysid = cluster_facts(sandbox)[0]
        assert drill_of(run, "db")["message"] == (
            "DestructiveRefused: restore refused: backups.db restore_into is postgres.ledger, a target this "
            f"environment checks: both are database ledger_copy (oid {oid}) of cluster {sysid}")
        with admin(sandbox, "ledger_copy") as conn:
            assert conn.execute("SELECT count(*) FROM canary").fetchone()[0] == 3
    finally:
        with admin(sandbox) as conn:
            conn.execute("DROP DATABASE IF EXISTS ledger_copy WITH (FORCE)")


def test_a_target_whose_identity_cannot_be_established_is_refused(sandbox, tmp_path, refused_port, write_env):
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    down = {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{refused_port}/drill",
            "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}
    fine = {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{sandbox.pg_port}/drill_fine",
            "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}
    environment = sandbox_environment(sandbox, backups={
        "down": drill_set(tmp_path / "db", "*.dump", "pg_custom", down),
        "fine": drill_set(tmp_path / "db", "*.dump", "pg_custom", fine)})
    message = refusal_of(write_env, environment, "down")
    assert re.fullmatch(rf"restore refused: backups\.down restore_into: cannot tell which database "
                        rf"127\.0\.0\.1:{refused_port}/drill is \(.*Connection refused.*\), so it cannot be proven "
                        rf"not to be the source or another target", message), message
    assert refusal_of(write_env, environment, "fine") is None
    environment["postgres"]["other"] = {"dsn": f"postgresql://x@127.0.0.1:{refused_port}/other"}
    message = refusal_of(write_env, environment, "fine")
    assert re.fullmatch(r"restore refused: backups\.fine restore_into: cannot tell which database postgres\.other "
                        r"is \(.*Connection refused.*\), so restore_into cannot be proven not to be it",
                        message), message


@pytest.fixture
def mysql_canary(sandbox):
    """A table created in the sandbox MariaDB's bankchain after its dump was taken: a restore would lose it."""
    if "SANDBOX_MYSQL_PORT" not in sandbox.variables:
        pytest.skip("no MariaDB in the sandbox (apt-get install mariadb-server)")
    port = int(sandbox.variables["SANDBOX_MYSQL_PORT"])

    def connect():
        return pymysql.connect(host="127.0.0.1", port=port, user="opsproof_admin", database="bankchain",
                               password=sandbox.variables["SANDBOX_MYSQL_ADMIN_PASSWORD"], autocommit=True)

    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE drill_canary (id INT)")
        cursor.execute("INSERT INTO drill_canary VALUES (1), (2)")

    def rows() -> int:
        with connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM drill_canary")
            return cursor.fetchone()[0]

    yield port, rows
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS drill_canary")


def test_a_mysql_alias_of_the_source_is_refused(sandbox, tmp_path, write_env, run_checks, mysql_canary):
    port, canary_rows = mysql_canary
    location = mysql_dump_copy(sandbox, tmp_path / "m")
    sets = {name: {"of": "mysql.ledger", "location": location, "format": "mysqldump_gz",
                   "rpo": "24h", "rto": "5m", "restore_into": {
                       "dsn": f"mysql://opsproof_admin@{host}:{port}/BankChain",
                       "password": "${TEST_MYSQL_ADMIN_PASSWORD}", "scratch": True}}
            for name, host in {"short": "127.1", "any": "0.0.0.0", "hostname": socket.gethostname()}.items()}
    environment = sandbox_environment(sandbox, backups=sets)
    environment["mysql"] = {"ledger": {"host": "127.0.0.1", "port": port, "user": "bankchain",
                                       "password": "${TEST_MYSQL_PASSWORD}", "database": "bankchain"}}
    run = run_checks(write_env(environment), "--suite", "backup", "--allow-destructive", "-k", "restores")
    assert run.ret == 1
    for name in sets:
        message = drill_of(run, name)["message"]
        assert message.startswith(f"DestructiveRefused: restore refused: backups.{name} restore_into is the source "
                                  f"mysql.ledger itself: both are schema bankchain of MariaDB server "), message
    assert canary_rows() == 2


def assert_refused_as(sandbox, tmp_path, write_env, cases: dict) -> None:
    """Each data_dir (key) is refused as being, or lying inside (value), the sandbox's data directory."""
    base_copy(sandbox, tmp_path / "base")
    source = os.path.realpath(sandbox.pg_data_dir)
    for data_dir, relation in cases.items():
        environment = sandbox_environment(sandbox, backups={"b": base_set(tmp_path / "base", data_dir)})
        assert refusal_of(write_env, environment, "b") == (
            f"restore refused: backups.b restore_into.data_dir {data_dir} {relation} the source's data_directory "
            f"{source}"), data_dir
    assert not (Path(source) / "drill").exists()


def test_a_data_dir_reached_through_a_symlink_of_the_source_is_refused(sandbox, tmp_path, write_env):
    link = tmp_path / "link"
    link.symlink_to(os.path.realpath(sandbox.pg_data_dir))
    assert_refused_as(sandbox, tmp_path, write_env, {link: "is", link / "drill": "is inside"})


def test_a_data_dir_reached_through_a_bind_mount_of_the_source_is_refused(sandbox, tmp_path, write_env):
    source = Path(os.path.realpath(sandbox.pg_data_dir))
    binds = {tmp_path / "bind": source, tmp_path / "bind-parent": source.parent}
    mounted = []
    try:
        for bind, what in binds.items():
            bind.mkdir()
            if subprocess.run(["mount", "--bind", str(what), str(bind)], capture_output=True, check=False).returncode:
                pytest.skip("bind mounts are not allowed here (the symlink test covers the rest)")
            mounted.append(bind)
        assert_refused_as(sandbox, tmp_path, write_env, {
            tmp_path / "bind": "is", tmp_path / "bind" / "drill": "is inside",
            tmp_path / "bind" / "base" / "1" / "x": "is inside",
            tmp_path / "bind-parent" / source.name / "drill": "is inside"})
    finally:
        for bind in mounted:
            subprocess.run(["umount", str(bind)], check=True)


# --- 2. secrets stay off command lines ------------------------------------------------------------------------

class CommandLines(threading.Thread):
    """Reads every process's /proc/<pid>/cmdline over and over while a drill runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit() and proc.name != str(os.getpid()):
                    try:
                        self.seen.add((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        continue
            time.sleep(0.005)  # leaves the drill (same process) its share of the interpreter


def test_no_secret_reaches_a_drill_child_process_command_line(sandbox, tmp_path, scratch_root, write_env, run_checks):
    pg_secret = sandbox.pg_admin_password
    copy_backup(sandbox, "*.dump", tmp_path / "custom")
    copy_backup(sandbox, "bankchain-*.sql.gz", tmp_path / "plain")
    base_copy(sandbox, tmp_path / "base")

    def inline(database: str) -> dict:
        return {"dsn": f"postgresql://opsproof_admin:{pg_secret}@127.0.0.1:{sandbox.pg_port}/{database}",
                "scratch": True}

    sets = {"custom-inline": drill_set(tmp_path / "custom", "*.dump", "pg_custom", inline("drill_secret_c")),
            "plain-inline": drill_set(tmp_path / "plain", "*.sql.gz", "pg_plain_gz", inline("drill_secret_p")),
            "custom-field": drill_set(tmp_path / "custom", "*.dump", "pg_custom", {
                "dsn": f"postgresql://opsproof_admin@127.0.0.1:{sandbox.pg_port}/drill_secret_f",
                "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}),
            "base": base_set(tmp_path / "base", scratch_root / "base")}
    secrets = [pg_secret]
    environment = sandbox_environment(sandbox, backups=sets)
    if "SANDBOX_MYSQL_PORT" in sandbox.variables:
        mysql_secret = sandbox.variables["SANDBOX_MYSQL_ADMIN_PASSWORD"]
        secrets.append(mysql_secret)
        port = sandbox.variables["SANDBOX_MYSQL_PORT"]
        sets["mysql-inline"] = {
            "of": "mysql.ledger", "location": mysql_dump_copy(sandbox, tmp_path / "m"), "format": "mysqldump_gz",
            "rpo": "24h", "rto": "5m", "tables": {"transactions": {"min_rows": 1000}},
            "restore_into": {"dsn": f"mysql://opsproof_admin:{mysql_secret}@127.0.0.1:{port}/drill_secret_m",
                             "scratch": True}}
        environment["mysql"] = {"ledger": {"host": "127.0.0.1", "port": int(port), "user": "bankchain",
                                           "password": "${TEST_MYSQL_PASSWORD}", "database": "bankchain"}}
    watcher = CommandLines()
    watcher.start()
    try:
        run = run_checks(write_env(environment), "--suite", "backup", "--allow-destructive", "-k", "restores")
    finally:
        watcher.done.set()
        watcher.join(10)
    assert run.ret == 0, run.output
    assert {drill_of(run, name)["drill"]["outcome"] for name in sets} == {"passed"}
    for tool in ("pg_restore ", "psql ", "pg_ctl ", *(["mysql "] if "mysql-inline" in sets else [])):
        assert any(tool in line for line in watcher.seen), f"{tool.strip()} never seen: the watcher proves nothing"
    leaked = [line for line in watcher.seen for secret in secrets if secret in line]
    assert leaked == []


# --- 3. a drill killed mid-way --------------------------------------------------------------------------------

def checks_process(env_path: Path, reports: Path, sandbox, **env) -> subprocess.Popen:
    """A real run of the restore checks in its own process (the one a SIGKILL takes down)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         str(ROOT / "checks"), "--env", str(env_path), "--reports-dir", str(reports), "-p", "no:randomly", "-q",
         "--suite", "backup", "--allow-destructive", "-k", "restores"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TEST_PG_PASSWORD": sandbox.pg_password, "TEST_REDIS_PASSWORD": sandbox.redis_password,
             "TEST_PG_ADMIN_PASSWORD": sandbox.pg_admin_password, **env})


def wait_for(condition, what: str, process: subprocess.Popen, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        assert process.poll() is None, f"the run ended before {what}"
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout_s} s")


def ready_server(pgdata: Path) -> int | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return int(lines[0]) if len(lines) > 7 and lines[7].strip() == "ready" else None


SLOW = {"slow": {"sql": "SELECT 0 FROM pg_sleep(120)", "max": 0}}  # holds the drill while the test kills it


def test_a_killed_physical_drill_leaves_a_server_the_next_drill_stops_before_touching_it(
        sandbox, tmp_path, scratch_root, write_env, run_checks):
    base_copy(sandbox, tmp_path / "base")
    data_dir = scratch_root / "killed"
    slow = write_env(sandbox_environment(sandbox, backups={"base": base_set(tmp_path / "base", data_dir,
                                                                            invariants=SLOW)}), "slow")
    run = checks_process(slow, tmp_path / "killed-reports", sandbox)
    try:
        orphan = wait_for(lambda: ready_server(data_dir / "pgdata"), "throwaway server", run)
        time.sleep(0.5)  # into the verification
    finally:
        run.kill()
        run.wait(10)
    try:
        assert alive(orphan) and servers_under(data_dir)  # what SIGKILL leaves: the throwaway server runs on
        again = run_checks(write_env(sandbox_environment(sandbox, backups={
            "base": base_set(tmp_path / "base", data_dir)})), "--suite", "backup", "--allow-destructive", "-k",
            "restores")
        assert not alive(orphan) and not servers_under(data_dir) and not data_dir.exists()
    finally:
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)  # the test's own stray server, when the drill failed to stop it
    assert again.ret == 0, again.output
    record = drill_of(again, "base")["drill"]
    assert record["outcome"] == "passed" and record["cleanup_confirmed"] is True
    assert record["previous_leftovers"] == [
        f"server pid {orphan} running from {data_dir}/pgdata, left by a killed drill: stopped"]


def test_a_process_holding_the_drill_directory_stops_the_drill_and_the_record_says_what_is_left(
        sandbox, tmp_path, scratch_root, write_env, run_checks):
    base_copy(sandbox, tmp_path / "base")
    data_dir = scratch_root / "held"
    (data_dir / "pgdata").mkdir(parents=True)
    (data_dir / ".opsproof-drill").write_text("")  # a previous drill's directory...
    holder = subprocess.Popen(["sleep", "300"], cwd=data_dir / "pgdata")  # ...that something still works in
    try:
        run = run_checks(write_env(sandbox_environment(sandbox, backups={"b": base_set(tmp_path / "base", data_dir)})),
                         "--suite", "backup", "--allow-destructive", "-k", "restores")
        record = drill_of(run, "b")
        held = f"{data_dir} is in use by pid {holder.pid} (sleep 300, cwd {data_dir}/pgdata)"
        assert run.ret == 1 and record["outcome"] == "error"
        assert record["message"] == f"could not measure on backups.b: {held}: left as is"
        assert record["drill"]["cleanup_confirmed"] is False and record["drill"]["cleanup_left"] == [held]
        assert holder.poll() is None and (data_dir / "pgdata").is_dir() and (data_dir / ".opsproof-drill").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_logical_drills_fetch_directory_is_removed_by_the_next_run(sandbox, tmp_path, write_env, run_checks,
                                                                           monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    copy_backup(sandbox, "*.dump", tmp_path / "db")
    into = {"dsn": f"postgresql://opsproof_admin@127.0.0.1:{sandbox.pg_port}/drill_killed",
            "password": "${TEST_PG_ADMIN_PASSWORD}", "scratch": True}
    slow = write_env(sandbox_environment(sandbox, backups={
        "db": drill_set(tmp_path / "db", "*.dump", "pg_custom", into, invariants=SLOW)}), "slow")
    run = checks_process(slow, tmp_path / "killed-reports", sandbox, TMPDIR=str(temp))

    def sleeping() -> bool:
        with admin(sandbox) as conn:
            return bool(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'drill_killed' "
                                     "AND query LIKE '%pg_sleep%'").fetchone()[0])

    try:
        wait_for(sleeping, "drill verifying", run)
    finally:
        run.kill()
        run.wait(10)
    (orphaned,) = temp.glob("opsproof-drill-*")
    foreign = temp / "opsproof-drill-not-ours"  # no owner recorded: not ours to judge
    foreign.mkdir()
    living = subprocess.Popen([sys.executable, "-c", ("import time; from opsproof.processes import owned_tempdir; "
                                                      "print(owned_tempdir('opsproof-drill-'), flush=True); "
                                                      "time.sleep(300)")],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(temp)})
    try:
        owned_by_living = Path(living.stdout.readline().strip())
        assert owned_by_living.parent == temp and identity(living.pid)
        again = run_checks(write_env(sandbox_environment(sandbox, backups={
            "db": drill_set(tmp_path / "db", "*.dump", "pg_custom", into)})), "--suite", "backup",
            "--allow-destructive", "-k", "restores")
        assert again.ret == 0, again.output
        assert not orphaned.exists() and foreign.is_dir() and owned_by_living.is_dir()
        assert {p.name for p in temp.iterdir()} == {foreign.name, owned_by_living.name}
    finally:
        living.kill()
        living.wait()
    with admin(sandbox) as conn:
        assert not conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'drill_killed'").fetchone()[0]


# --- 4. the sandbox's drill directory is its own --------------------------------------------------------------

def test_local_yaml_drills_bankchain_base_under_the_sandboxs_own_directory(sandbox, tmp_path, run_checks):
    drill_dir = Path(sandbox.variables["SANDBOX_DRILL_DIR"])
    own = [Path(p) for record in sandbox.processes.values() for p in record.get("cleanup", [])]
    assert any(drill_dir.is_relative_to(p) for p in [Path(sandbox.state_dir), *own]), drill_dir
    local = yaml.safe_load((ROOT / "environments" / "local.yaml").read_text())
    assert local["backups"]["bankchain-base"]["restore_into"]["data_dir"] == "${SANDBOX_DRILL_DIR}/bankchain-base"
    local["vars_file"] = str(Path(sandbox.state_dir) / "vars.env")
    env_file = tmp_path / "local.yaml"
    env_file.write_text(yaml.safe_dump(local, sort_keys=False))
    run = run_checks(env_file, "--suite", "backup", "--allow-destructive", "-k", "restores and bankchain-base")
    record = drill_of(run, "bankchain-base")["drill"]
    assert record["outcome"] == "passed" and record["target"] == f"{drill_dir}/bankchain-base/pgdata", run.output
    assert not (drill_dir / "bankchain-base").exists()
    assert json.loads((Path(sandbox.state_dir) / "state.json").read_text())["variables"]["SANDBOX_DRILL_DIR"] == (
        str(drill_dir))
