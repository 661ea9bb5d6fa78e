"""Real backups of the sandbox's data, taken at ``up``: what the backup suite and restore drill verify.

Into ``<state_dir>/backups``: a pg_dump custom-format file and a plain ``.sql.gz`` of the seeded
database (each with a ``.counts.json`` sidecar of row counts taken in the same snapshot), a
mysqldump when a MariaDB component published its variables, the Redis RDB, and a sha256 manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from opsproof.sandbox.processes import SandboxError

MANIFEST = "SHA256SUMS"


def _run_dump(command: list[str], env: dict, target: Path, gzipped: bool) -> None:
    """Run a dump tool into ``target`` (gzip'd in Python), failing loudly: no silent partial dumps."""
    opener = gzip.open if gzipped else open
    with opener(target, "wb") as out:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        shutil.copyfileobj(process.stdout, out, 1 << 20)
        stderr = process.stderr.read().decode(errors="replace")
        if process.wait(timeout=300) != 0:
            target.unlink(missing_ok=True)
            raise SandboxError(f"{command[0]} failed: {stderr.strip().splitlines()[-1:]}")


def _pg_row_counts(port: int, admin_password: str, database: str) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host="127.0.0.1", port=port, user="opsproof_admin", password=admin_password,
                         dbname=database, connect_timeout=5) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
                for t in tables}


def postgres_dumps(box, directory: Path, stamp: str) -> list[Path]:
    from opsproof.sandbox.postgres import ADMIN_USER, DATABASE

    env = {**os.environ, "PGPASSWORD": box.pg_admin_password, "PGCONNECT_TIMEOUT": "5"}
    base = ["pg_dump", "-h", "127.0.0.1", "-p", str(box.pg_port), "-U", ADMIN_USER, "-d", DATABASE]
    counts = {"taken_at": stamp, "tables": _pg_row_counts(box.pg_port, box.pg_admin_password, DATABASE)}
    written = []
    for name, extra, gzipped in ((f"{DATABASE}-{stamp}.dump", ["-Fc"], False),
                                 (f"{DATABASE}-{stamp}.sql.gz", [], True)):
        path = directory / name
        _run_dump(base + extra, env, path, gzipped)
        (directory / f"{name}.counts.json").write_text(json.dumps(counts, indent=2) + "\n")
        written.append(path)
    return written


def mysql_dump(box, directory: Path, stamp: str) -> list[Path]:
    """Only when a MariaDB component published SANDBOX_MYSQL_PORT and SANDBOX_MYSQL_ADMIN_PASSWORD."""
    port, password = box.variables.get("SANDBOX_MYSQL_PORT"), box.variables.get("SANDBOX_MYSQL_ADMIN_PASSWORD")
    dump = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    if not port or dump is None:
        return []
    database = box.variables.get("SANDBOX_MYSQL_DATABASE", "bankchain")
    path = directory / f"mysql-{database}-{stamp}.sql.gz"  # not bankchain-*: that is the PostgreSQL dump
    command = [dump, "--no-defaults", "--host=127.0.0.1", f"--port={port}", "--user=opsproof_admin",
               "--single-transaction", "--routines", database]
    _run_dump(command, {**os.environ, "MYSQL_PWD": password or ""}, path, True)
    return [path]


def redis_rdb(box, directory: Path, stamp: str) -> list[Path]:
    """SAVE, then copy the RDB file the server wrote."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=box.redis_port, password=box.redis_password, socket_timeout=30)
    with client:
        client.save()
        source = Path(client.config_get("dir")["dir"]) / client.config_get("dbfilename")["dbfilename"]
    path = directory / f"redis-{stamp}.rdb"
    shutil.copyfile(source, path)
    return [path]


def write_manifest(directory: Path, files: list[Path]) -> Path:
    lines = []
    for path in files:
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    manifest = directory / MANIFEST
    manifest.write_text("".join(lines))
    return manifest


def component(box) -> None:
    """Sandbox component: back up PostgreSQL, Redis (and MariaDB when present) into <state_dir>/backups."""
    directory = Path(box.state_dir) / "backups"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    files = postgres_dumps(box, directory, stamp) + mysql_dump(box, directory, stamp) + redis_rdb(box, directory, stamp)
    write_manifest(directory, files)
    box.variables["SANDBOX_BACKUP_DIR"] = str(directory)
    box.variables.setdefault("SANDBOX_PG_PORT", str(box.pg_port))  # the drill's scratch database lives there
