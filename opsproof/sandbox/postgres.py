"""A throwaway PostgreSQL cluster on a free loopback port, run as an unprivileged user when root."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from opsproof.postgres.binaries import bindir
from opsproof.processes import give_to_unprivileged
from opsproof.sandbox.processes import SandboxError, unprivileged_user
from opsproof.sandbox.processes import run_unprivileged as _as_server_user

DATABASE = "bankchain"
APP_USER = "bankchain"
ADMIN_USER = "opsproof_admin"


def create_cluster(state_dir: Path, port: int, admin_password: str) -> Path:
    """initdb a cluster with scram auth; returns its data directory."""
    user = unprivileged_user()
    # As root the data lives in its own /tmp folder, so the server user need not traverse the state dir.
    parent = Path(tempfile.mkdtemp(prefix="opsproof-pg-")) if user else state_dir
    data_dir = parent / "data"
    pwfile = parent / "pwfile"
    pwfile.write_text(admin_password + "\n")
    if user:
        os.chmod(parent, 0o755)
        os.chown(parent, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    os.chmod(pwfile, 0o600)
    result = _as_server_user([
        str(bindir() / "initdb"), "-D", str(data_dir), "--auth=scram-sha-256", f"--username={ADMIN_USER}",
        f"--pwfile={pwfile}", "--no-sync", "--encoding=UTF8", "--locale=C",
    ])
    pwfile.unlink()
    if result.returncode != 0:
        raise SandboxError(f"initdb failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return data_dir


def archive_wal(data_dir: Path) -> Path:
    """Archive every finished WAL segment into a directory beside the cluster (``cp``, never overwriting).

    Set in ``postgresql.auto.conf``, so a restart (a DR drill's) keeps archiving; a restore drill
    starts its copy with ``archive_mode=off``.
    """
    archive_dir = data_dir.parent / "wal-archive"
    archive_dir.mkdir(exist_ok=True)
    give_to_unprivileged(archive_dir)
    target = shlex.quote(str(archive_dir))
    command = f"test ! -f {target}/%f && cp %p {target}/%f".replace("'", "''")
    with open(data_dir / "postgresql.auto.conf", "a") as auto:
        auto.write(f"archive_mode = on\narchive_command = '{command}'\n")
    return archive_dir


def drill_dir(data_dir: Path) -> Path:
    """Where this sandbox's physical restore drills put their scratch data directories (``SANDBOX_DRILL_DIR``):
    beside its cluster, so never another checkout's, and where the server user can reach them (as root, the
    cluster's own folder in /tmp, since the state directory is private to root); `sandbox down` removes it."""
    directory = data_dir.parent / "drill"
    directory.mkdir(mode=0o755)
    return directory


def start(data_dir: Path, port: int) -> int:
    """Start the server and wait until it accepts connections; returns the postmaster pid."""
    options = [
        "-c listen_addresses=127.0.0.1", f"-c port={port}", "-c unix_socket_directories=''", "-c fsync=off",
        "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=40", "-c wal_level=replica",
        "-c max_wal_senders=4",
    ]
    extension = Path(str(bindir()).replace("/lib/", "/share/")).parent / "extension/pg_stat_statements.control"
    if extension.exists():
        options.append("-c shared_preload_libraries=pg_stat_statements")
    result = _as_server_user([
        str(bindir() / "pg_ctl"), "-D", str(data_dir), "-l", str(data_dir / "server.log"), "-w", "-t", "60",
        "-o", " ".join(options), "start",
    ])
    if result.returncode != 0:
        log = (data_dir / "server.log").read_text(errors="replace") if (data_dir / "server.log").exists() else ""
        raise SandboxError(f"PostgreSQL did not start: {(log or result.stderr).strip().splitlines()[-1:]}")
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def stop(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        _as_server_user([str(bindir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "30", "stop"])


def remove(data_dir: Path, state_dir: Path) -> None:
    """Remove the cluster's files (its own /tmp folder when it ran as another user)."""
    parent = data_dir.parent
    shutil.rmtree(parent if parent != state_dir else data_dir, ignore_errors=True)


def seed(port: int, admin_password: str, app_password: str) -> None:
    """Create the application role and database and load the runbook-shaped data."""
    import psycopg
    from psycopg import sql

    admin = dict(host="127.0.0.1", port=port, user=ADMIN_USER, password=admin_password, connect_timeout=5)
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP_USER), app_password))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(APP_USER)))
    sql = resources.files("opsproof.sandbox").joinpath("seed.sql").read_text()
    with psycopg.connect(dbname=DATABASE, **admin) as conn:
        conn.execute(f"SET ROLE {APP_USER}")
        conn.execute(sql)
        conn.execute("RESET ROLE")
        if _has_extension(conn, "pg_stat_statements"):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute(f"GRANT pg_read_all_stats TO {APP_USER}")
        conn.execute(f"GRANT pg_monitor TO {APP_USER}")  # pg_ls_waldir: tells a delayed WAL segment from a lost one


def _has_extension(conn, name: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = %s", (name,)).fetchone()
    return bool(row and row[0])


def dsn(port: int, user: str = APP_USER, database: str = DATABASE) -> str:
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"


def component(box) -> None:
    """Sandbox component: a seeded cluster, its admin and application passwords."""
    from opsproof.sandbox.processes import free_port

    admin_password, app_password, port = secrets.token_urlsafe(18), secrets.token_urlsafe(18), free_port()
    box.variables.update(SANDBOX_PG_ADMIN_PASSWORD=admin_password, SANDBOX_PG_PASSWORD=app_password,
                         SANDBOX_PG_DSN=dsn(port))
    data_dir = create_cluster(Path(box.state_dir), port, admin_password)
    cleanup = [str(data_dir.parent if data_dir.parent != Path(box.state_dir) else data_dir)]
    box.variables["SANDBOX_WAL_ARCHIVE_DIR"] = str(archive_wal(data_dir))
    box.variables["SANDBOX_DRILL_DIR"] = str(drill_dir(data_dir))
    try:
        pid = start(data_dir, port)
    except BaseException:
        remove(data_dir, Path(box.state_dir))
        raise
    box.add_process("postgres", pid, port, data_dir=str(data_dir), cleanup=cleanup)
    seed(port, admin_password, app_password)
