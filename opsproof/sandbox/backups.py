"""Real backups of the sandbox's data: what the backup suite and restore drill verify.

A round, taken at ``up`` and by each ``opsproof sandbox backup`` (the sandbox's nightly job), writes
into ``<state_dir>/backups``: a pg_dump custom-format file and a plain ``.sql.gz`` of the seeded
database (each with a ``.counts.json`` sidecar of row counts taken in the same snapshot), a
mysqldump when a MariaDB component published its variables, the Redis RDB and a ``pg_basebackup``
directory with its backup manifest and its own ``base-<stamp>.counts.json`` sidecar. The newest
rounds are kept, as a retention policy would (so the size-history check has earlier backups to
compare with); ``SHA256SUMS`` covers every kept file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from opsproof.sandbox.processes import SandboxError

MANIFEST = "SHA256SUMS"
KEPT_ROUNDS = 7  # logical dumps and RDB files, as a week of nightly backups
KEPT_BASE_BACKUPS = 2  # base backups are the whole cluster
BASE_PREFIX = "base-"


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


def base_backup(box, directory: Path, stamp: str) -> Path:
    """A plain-format ``pg_basebackup`` with streamed WAL and a SHA-256 backup manifest."""
    from opsproof.sandbox.postgres import ADMIN_USER, DATABASE, bindir

    path = directory / f"{BASE_PREFIX}{stamp}"
    counts = {"taken_at": stamp, "tables": _pg_row_counts(box.pg_port, box.pg_admin_password, DATABASE)}
    command = [str(bindir() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(box.pg_port), "-U", ADMIN_USER,
               "-D", str(path), "-Fp", "-X", "stream", "-c", "fast", "--no-sync", "--manifest-checksums=SHA256"]
    env = {**os.environ, "PGPASSWORD": box.pg_admin_password, "PGCONNECT_TIMEOUT": "5"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        raise SandboxError(f"pg_basebackup failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    (directory / f"{path.name}.counts.json").write_text(json.dumps(counts, indent=2) + "\n")  # for the drill
    return path  # pg_verifybackup checks it against its own backup_manifest, not SHA256SUMS


def _stamp(directory: Path) -> str:
    """A UTC second no earlier round used (two rounds within a second would overwrite each other)."""
    while True:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        if not any(directory.glob(f"*{stamp}*")):
            return stamp
        time.sleep(0.2)


def _stamps(directory: Path, pattern: str) -> list[str]:
    """The round stamps in names like ``redis-20261123T020000Z.rdb``, oldest first."""
    return sorted({p.name.rsplit("-", 1)[-1].split(".")[0] for p in directory.glob(pattern)})


def rounds(directory: Path) -> list[str]:
    """The kept rounds (every round writes one Redis RDB), oldest first."""
    return _stamps(directory, "redis-*.rdb")


def _prune(directory: Path) -> None:
    """Keep the newest rounds: files (and sidecars) by their stamp, base backups by theirs."""
    for stamp in _stamps(directory, f"{BASE_PREFIX}*")[:-KEPT_BASE_BACKUPS]:
        shutil.rmtree(directory / f"{BASE_PREFIX}{stamp}", ignore_errors=True)
        (directory / f"{BASE_PREFIX}{stamp}.counts.json").unlink(missing_ok=True)
    for stamp in rounds(directory)[:-KEPT_ROUNDS]:
        for path in directory.glob(f"*-{stamp}.*"):
            path.unlink()


def write_manifest(directory: Path) -> Path:
    """``sha256sum``-style lines for every kept backup file (sidecars and base backups excluded)."""
    lines = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(".counts.json"):
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    manifest = directory / MANIFEST
    manifest.write_text("".join(lines))
    return manifest


def take_round(box) -> str:
    """One round of real backups of every sandbox server; returns its stamp."""
    directory = Path(box.state_dir) / "backups"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(directory)
    postgres_dumps(box, directory, stamp)
    mysql_dump(box, directory, stamp)
    redis_rdb(box, directory, stamp)
    base_backup(box, directory, stamp)
    _prune(directory)
    write_manifest(directory)
    return stamp


def component(box) -> None:
    """Sandbox component: the first round of backups, into <state_dir>/backups."""
    take_round(box)
    box.variables["SANDBOX_BACKUP_DIR"] = str(Path(box.state_dir) / "backups")
    box.variables.setdefault("SANDBOX_PG_PORT", str(box.pg_port))  # the drill's scratch database lives there
