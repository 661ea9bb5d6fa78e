"""Benchmark: what the read-only statement wrapping costs per invariant query.

Starts its own sandbox and runs the runbook invariant (open compliance alerts) ``--queries`` times,
``--runs`` times each after a warm-up, three ways per database: a bare read-only session
(PostgreSQL: ``default_transaction_read_only`` and autocommit, the simple protocol; MariaDB: ``SET
SESSION TRANSACTION READ ONLY`` once), as opsproof sent it before; opsproof's probe on tier sandbox
(read-write: one statement per call, no transaction); and on tier staging (PostgreSQL: ``BEGIN READ
ONLY``, the statement, ``ROLLBACK``, ``DISCARD ALL`` in one pipeline; MariaDB: session and transaction
read-only, the statement, COM_RESET_CONNECTION). Prints the median time per query.
Usage: ``.venv/bin/python bench/read_only_sessions.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from opsproof import sandbox as sandbox_module
from opsproof.mysql import MysqlProbe
from opsproof.postgres import PostgresProbe
from opsproof.sandbox import mariadb as sandbox_mariadb

SQL = "SELECT count(*) FROM compliance_alerts WHERE status = 'open'"


def bare_postgres(box):
    import psycopg

    conn = psycopg.connect(box.pg_dsn, password=box.pg_password, autocommit=True,
                           options="-c statement_timeout=5000 -c default_transaction_read_only=on")
    return lambda: conn.execute(SQL).fetchone()[0]


def bare_mariadb(box):
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=box.port("mariadb"), user=sandbox_mariadb.APP_USER,
                           password=box.variables["SANDBOX_MYSQL_PASSWORD"], database=sandbox_mariadb.DATABASE,
                           autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION max_statement_time = 5")
        cursor.execute("SET SESSION TRANSACTION READ ONLY")

    def query():
        with conn.cursor() as cursor:
            cursor.execute(SQL)
            return cursor.fetchone()[0]

    return query


def per_query_ms(query, queries: int, runs: int) -> float:
    query()  # warm-up: connection and role check
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(queries):
            query()
        times.append((time.perf_counter() - started) / queries * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-bench-sessions-"))
    box = sandbox_module.up(state_dir)
    try:
        mysql = ("127.0.0.1", box.port("mariadb"), sandbox_mariadb.APP_USER, box.variables["SANDBOX_MYSQL_PASSWORD"],
                 sandbox_mariadb.DATABASE)
        rows = [("PostgreSQL", bare_postgres(box),
                 *[PostgresProbe(box.pg_dsn, box.pg_password, read_only=ro, refuse_privileged_role=False)
                   for ro in (False, True)]),
                ("MariaDB", bare_mariadb(box),
                 *[MysqlProbe(*mysql, read_only=ro, refuse_privileged_role=False) for ro in (False, True)])]
        print(f"{args.queries} invariant queries, median of {args.runs}, ms per query:")
        print(f"{'':10}  {'bare read-only':>14}  {'tier sandbox':>12}  {'tier staging':>12}")
        for name, bare, read_write, read_only in rows:
            queries = (bare, lambda: read_write.invariant("open_alerts", SQL),
                       lambda: read_only.invariant("open_alerts", SQL))
            times = [per_query_ms(query, args.queries, args.runs) for query in queries]
            print(f"{name:10}  {times[0]:14.3f}  {times[1]:12.3f}  {times[2]:12.3f}")
    finally:
        sandbox_module.down(state_dir)


if __name__ == "__main__":
    main()
