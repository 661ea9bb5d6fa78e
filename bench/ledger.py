"""Real-sized data for bench/restore.py: a 1M-row table built in the sandbox's PostgreSQL, dumped with pg_dump -Fc.

The table is what a ledger looks like (a key, an account, an amount, a time, a text payload); the payload
is random hex, so the custom-format dump stays about 100 bytes a row after pg_dump's compression.
Everything is built here, in a scratch database of the sandbox (``bench_ledger``), and removed by ``drop``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from opsproof.sandbox import postgres as sandbox_pg

DATABASE = "bench_ledger"
TABLE = "ledger"
SET = "ledger-custom"
SCRATCH = "opsproof_drill_ledger"  # where the drill restores it
BARE = "bench_bare_ledger"  # where the bare pg_restore does
BUILD = f"""
CREATE TABLE {TABLE} (id bigint PRIMARY KEY, account integer NOT NULL, amount numeric(12, 2) NOT NULL,
                      created_at timestamptz NOT NULL, payload text NOT NULL);
INSERT INTO {TABLE}
SELECT i, i % 50000, round((random() * 10000)::numeric, 2), now() - (i % 86400) * interval '1 second',
       md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(i::text)
FROM generate_series(1, %(rows)s) AS i;
"""
# What the drill runs on the restored database for this set (tables: ledger with a timestamp): the bare
# side runs the same queries.
QUERIES = [f"SELECT to_regclass('{TABLE}') IS NOT NULL", f"SELECT count(*) FROM {TABLE}",
           f"SELECT max(created_at) FROM {TABLE}"]


def admin(box, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=box.pg_port, user=sandbox_pg.ADMIN_USER,
                           password=box.pg_admin_password, dbname=dbname, autocommit=True, connect_timeout=5)


def client_env(box) -> dict:
    return {**os.environ, "PGPASSWORD": box.pg_admin_password, "PGCONNECT_TIMEOUT": "5"}


def build(box, rows: int, directory: Path) -> Path:
    """Create and fill ``bench_ledger``, dump it to ``directory/ledger-<rows>.dump`` with its row-count sidecar."""
    build_in(box, rows)
    directory.mkdir(parents=True, exist_ok=True)
    dump = directory / f"ledger-{rows}.dump"
    subprocess.run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-p", str(box.pg_port), "-U", sandbox_pg.ADMIN_USER,
                    "-d", DATABASE, "-f", str(dump)], env=client_env(box), check=True, timeout=1800)
    (directory / f"{dump.name}.counts.json").write_text(json.dumps({"tables": {TABLE: rows}}) + "\n")
    return dump


def build_in(box, rows: int) -> None:
    """Create ``bench_ledger`` on ``box``'s server (``pg_port``, ``pg_admin_password``) and fill its table."""
    with admin(box) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with admin(box, DATABASE) as conn:
        for statement in BUILD.strip().split(";\n"):
            if statement.strip():
                conn.execute(statement.replace("%(rows)s", str(int(rows))))
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def drop(box) -> None:
    with admin(box) as conn:
        for name in (DATABASE, BARE, SCRATCH):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def backup_set(directory: Path, rows: int) -> str:
    """The backup set's YAML (indented for ``backups:``) the drill restores: the dump, its table, its scratch."""
    return f"""  {SET}:
    of: postgres.main
    location: {directory}/ledger-*.dump
    format: pg_custom
    rpo: 24h
    rto: 30m
    tables:
      {TABLE}: {{min_rows: {rows}, timestamp: created_at}}
    restore_into:
      dsn: postgresql://{sandbox_pg.ADMIN_USER}@127.0.0.1:${{SANDBOX_PG_PORT}}/{SCRATCH}
      password: ${{SANDBOX_PG_ADMIN_PASSWORD}}
      scratch: true
"""
