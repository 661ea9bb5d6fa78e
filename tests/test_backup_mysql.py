"""mysqldump backups against a real MariaDB: the sandbox's dump, its closing marker, a strict restore drill."""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pymysql
import pytest

from opsproof.backups import formats
from opsproof.backups.location import LocalLocation
from opsproof.backups.restore import Drill
from opsproof.environment.backups import BackupTarget
from opsproof.sandbox import Sandbox
from opsproof.sandbox import backups as sandbox_backups
from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port

ROOT_OPTION = ["--user=root"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def mariadb():
    """A throwaway mariadbd (own data dir, port, socket) with an admin user and a small ledger table."""
    base, port, password = Path(tempfile.mkdtemp(prefix="opsproof-mariadb-")), free_port(), secrets.token_urlsafe(12)
    installed = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={base / 'data'}",
                                "--auth-root-authentication-method=normal", "--skip-test-db", *ROOT_OPTION],
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    process = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={base / 'data'}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={base / 'sock'}", f"--pid-file={base / 'pid'}", f"--log-error={base / 'error.log'}",
         "--skip-log-bin", "--innodb-buffer-pool-size=16M", *ROOT_OPTION],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, 60, "mariadbd", process)
        with pymysql.connect(unix_socket=str(base / "sock"), user="root", autocommit=True) as root, root.cursor() as c:
            c.execute("CREATE USER 'opsproof_admin'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            c.execute("GRANT ALL ON *.* TO 'opsproof_admin'@'127.0.0.1'")
            c.execute("CREATE DATABASE bankchain")
            c.execute("USE bankchain")
            c.execute("CREATE TABLE bankchain.ledger (id INT PRIMARY KEY, amount DECIMAL(18,2), created_at DATETIME)")
            c.execute("INSERT INTO ledger SELECT seq, seq * 10, now() - INTERVAL seq MINUTE FROM seq_1_to_300")
        yield {"port": port, "password": password, "base": base}
    finally:
        stop_pid(process.pid)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def dump(mariadb, tmp_path_factory) -> Path:
    """The sandbox backup component's mysqldump, taken from the real server."""
    directory = tmp_path_factory.mktemp("mysql-backups")
    box = Sandbox(state_dir=str(directory), variables={"SANDBOX_MYSQL_PORT": str(mariadb["port"]),
                                                       "SANDBOX_MYSQL_ADMIN_PASSWORD": mariadb["password"]})
    [path] = sandbox_backups.mysql_dump(box, directory, "20261123T000000Z")
    return path


def drill_target(directory: Path, mariadb, database: str, **extra) -> BackupTarget:
    return BackupTarget.model_validate({
        "name": "ledger", "of": "mysql.ledger", "location": str(directory / "mysql-*.sql.gz"),
        "format": "mysqldump_gz", "rpo": "24h", "rto": "5m", "tables": {"ledger": {"min_rows": 300,
                                                                                   "timestamp": "created_at"}},
        "restore_into": {"dsn": f"mysql://opsproof_admin@127.0.0.1:{mariadb['port']}/{database}",
                         "password": mariadb["password"], "scratch": True}, **extra})


def schemas(mariadb) -> set[str]:
    with pymysql.connect(host="127.0.0.1", port=mariadb["port"], user="opsproof_admin",
                         password=mariadb["password"]) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        return {row[0] for row in cursor.fetchall()}


def test_mysqldump_is_complete_and_a_truncated_one_has_no_closing_marker(dump, tmp_path):
    assert (formats.gzip_stream(dump), formats.closing_marker(dump, "mysqldump_gz")) == ("complete", "present")
    text = gzip.decompress(dump.read_bytes())
    cut = tmp_path / "mysql-cut.sql.gz"
    cut.write_bytes(gzip.compress(text[: len(text) * 8 // 10]))
    assert (formats.gzip_stream(cut), formats.closing_marker(cut, "mysqldump_gz")) == ("complete", "missing")


def test_mysql_drill_restores_verifies_and_drops(dump, mariadb):
    target = drill_target(dump.parent, mariadb, "drill_mysql")
    record = Drill(target, LocalLocation(target.location), mariadb["password"]).run()
    assert record.outcome == "passed" and record.cleanup_confirmed, record
    assert {"measure": "rows.ledger", "value": 300, "op": ">=", "limit": 300, "verdict": "ok"} in [
        v.to_dict() for v in record.verifications]
    assert 0 < record.rpo_achieved_s < 3600
    assert "drill_mysql" not in schemas(mariadb)


def test_mysql_drill_stops_at_an_error_in_the_dump(dump, mariadb, tmp_path):
    text = gzip.decompress(dump.read_bytes()).decode()
    broken = text.replace("UNLOCK TABLES;", "UNLOCK TABLES;\nINSERT INTO no_such_table VALUES (1);", 1)
    (tmp_path / "mysql-broken.sql.gz").write_bytes(gzip.compress(broken.encode()))
    target = drill_target(tmp_path, mariadb, "drill_mysql_error")
    drill = Drill(target, LocalLocation(target.location), mariadb["password"])
    record = drill.run()
    assert record.outcome == "failed" and record.cleanup_confirmed
    assert record.failed_step == "restore" and record.error.startswith("ERROR 1146 (42S02) at line ")
    assert drill.verifications[0].measure == "restore_error"
    assert drill.verifications[0].value.startswith("ERROR 1146 (42S02) at line ")
    assert drill.verifications[0].value.endswith("Table 'drill_mysql_error.no_such_table' doesn't exist")
    assert "drill_mysql_error" not in schemas(mariadb)
