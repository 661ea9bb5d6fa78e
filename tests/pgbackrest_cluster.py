"""A real pgBackRest stanza for the tests: a dedicated cluster archiving WAL, one full backup.

Shared by the pgBackRest checks' tests and the physical restore drill's (import ``archived`` to use it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from opsproof.sandbox import postgres as sandbox_pg
from opsproof.sandbox.processes import free_port, unprivileged_user

ADMIN_PASSWORD = "pgbackrest-admin-password"


class Archived:
    """A cluster with archive_mode on, archiving into a pgBackRest repository with one full backup."""

    def __init__(self, root: Path, data_dir: Path, port: int, config: Path):
        self.root, self.data_dir, self.port, self.config = root, data_dir, port, config

    def sql(self, statement: str):
        with psycopg.connect(host="127.0.0.1", port=self.port, user="opsproof_admin", dbname="postgres",
                             password=ADMIN_PASSWORD, autocommit=True) as conn:
            return conn.execute(statement).fetchall() if statement.lstrip().upper().startswith("SELECT") else (
                conn.execute(statement))

    def pgbackrest(self, *command: str) -> None:
        result = sandbox_pg._as_server_user(["pgbackrest", f"--config={self.config}", "--stanza=demo", *command])
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def archived():
    port, user = free_port(), unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="opsproof-pgbackrest-"))
    os.chmod(root, 0o755)
    data_dir = sandbox_pg.create_cluster(root, port, ADMIN_PASSWORD)
    for name in ("repo", "log", "lock", "socket"):
        (root / name).mkdir()
        if user:
            os.chown(root / name, user.pw_uid, user.pw_gid)
    config = root / "pgbackrest.conf"
    config.write_text(
        f"[global]\nrepo1-path={root}/repo\nlog-path={root}/log\nlock-path={root}/lock\nlog-level-file=off\n"
        f"start-fast=y\ncompress-type=none\n\n[demo]\npg1-path={data_dir}\npg1-port={port}\n"
        f"pg1-socket-path={root}/socket\npg1-user=opsproof_admin\n"
    )
    hba = data_dir / "pg_hba.conf"
    hba.write_text("local all all trust\n" + hba.read_text())  # pgBackRest talks over the socket
    with open(data_dir / "postgresql.auto.conf", "a") as auto:
        auto.write(f"archive_mode = on\narchive_command = 'pgbackrest --config={config} --stanza=demo "
                   f"archive-push %p'\n")
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}/socket "
               f"-c fsync=off -c wal_level=replica")
    started = sandbox_pg._as_server_user([str(sandbox_pg.bindir() / "pg_ctl"), "-D", str(data_dir), "-l",
                                          str(data_dir / "server.log"), "-w", "-t", "60", "-o", options, "start"])
    assert started.returncode == 0, started.stderr
    cluster = Archived(root, data_dir, port, config)
    try:
        cluster.pgbackrest("stanza-create")
        cluster.pgbackrest("backup", "--type=full")
        yield cluster
    finally:
        sandbox_pg.stop(data_dir)
        sandbox_pg.remove(data_dir, root)
        shutil.rmtree(root, ignore_errors=True)
