"""Scratch databases for the restore drill: create fresh, restore strictly, query, drop, confirm gone.

Strict means a restore error stops the restore: ``pg_restore --exit-on-error``, ``psql -v
ON_ERROR_STOP=1 --single-transaction``, ``mysql`` without ``--force``.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from opsproof.backups.formats import first_error
from opsproof.errors import ProbeError, first_line

_CHUNK = 1 << 20


def endpoint(dsn: str) -> tuple[str, int, str]:
    """(host, port, database) of a DSN, with defaults filled in, to tell two targets apart."""
    parts = urlsplit(dsn)
    host = (parts.hostname or "localhost").lower()
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    default = 3306 if parts.scheme == "mysql" else 5432
    return host, parts.port or default, parts.path.lstrip("/")


class RestoreFailed(Exception):
    """The restore command stopped on an error; the message is its first error line."""


def _feed(command: list[str], env: dict, source: Path, gzipped: bool, timeout_s: float) -> tuple[int, str]:
    """Stream a (gzip'd) dump into a client's stdin; returns its exit code and stderr."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    drain.start()  # a chatty client must not block on a full stderr pipe while we write its stdin
    watchdog = threading.Timer(timeout_s, process.kill)  # a client that stops reading must not hang the write
    watchdog.daemon = True
    watchdog.start()
    try:
        opener = gzip.open if gzipped else open
        with opener(source, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                process.stdin.write(chunk)
    except BrokenPipeError:
        pass  # the client stopped on an error: its stderr says which
    except (EOFError, OSError) as exc:
        process.kill()
        process.wait()
        raise RestoreFailed(f"reading {source.name}: {first_line(exc)}") from None
    finally:
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
    try:
        process.wait(timeout=timeout_s)
        watchdog.cancel()
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RestoreFailed(f"restore did not finish within {timeout_s:g} s") from None
    drain.join(5)
    return process.returncode, b"".join(errors).decode(errors="replace")


class PostgresScratch:
    def __init__(self, dsn: str, password: str | None, timeout_s: float):
        self.dsn, self.password, self.timeout_s = dsn, password, timeout_s
        self.database = endpoint(dsn)[2]
        self._session = None
        parts = urlsplit(dsn)
        self.admin_dsn = urlunsplit(parts._replace(path="/postgres"))

    def _connect(self, dsn: str):
        import psycopg

        kwargs = {"connect_timeout": 5, "autocommit": True, "application_name": "opsproof-drill"}
        if self.password is not None:
            kwargs["password"] = self.password
        try:
            return psycopg.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise ProbeError(f"scratch server: {first_line(exc)}", unreachable=True) from None

    def _admin(self, template: str) -> None:
        from psycopg import sql

        with self._connect(self.admin_dsn) as conn:
            conn.execute(sql.SQL(template).format(sql.Identifier(self.database)))

    def create(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._admin("CREATE DATABASE {}")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def drop(self) -> None:
        self.close()
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")

    def exists(self) -> bool:
        with self._connect(self.admin_dsn) as conn:
            row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
        return bool(row[0])

    def _env(self) -> dict:
        env = {**os.environ, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": "opsproof-drill"}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def restore(self, path: Path, format: str) -> None:
        if format == "pg_custom":
            command = ["pg_restore", "--exit-on-error", "--no-owner", "--no-privileges", "-d", self.dsn, str(path)]
            try:
                result = subprocess.run(command, capture_output=True, text=True, env=self._env(),
                                        timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise RestoreFailed(f"pg_restore did not finish within {self.timeout_s:g} s") from None
            code, stderr = result.returncode, result.stderr
        else:
            command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", self.dsn, "-f", "-"]
            code, stderr = _feed(command, self._env(), path, format.endswith("_gz"), self.timeout_s)
        if code != 0:
            raise RestoreFailed(first_error(stderr) or f"{command[0]} exited {code}")

    def query(self, sql, params=None) -> list[tuple]:
        """On one session to the restored database, opened at the first query and closed by ``drop``."""
        if self._session is None:
            self._session = self._connect(self.dsn)
        return self._session.execute(sql, params).fetchall()

    def table_exists(self, table: str) -> bool:
        return self.query("SELECT to_regclass(%s) IS NOT NULL", (table,))[0][0]

    def row_count(self, table: str) -> int:
        from psycopg import sql

        return self.query(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split("."))))[0][0]

    def newest(self, table: str, column: str):
        from psycopg import sql

        return self.query(sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column),
                                                                    sql.Identifier(*table.split("."))))[0][0]


class MySqlScratch:
    """MySQL / MariaDB: the dump is fed to ``mysql`` (never ``--force``) after a fresh CREATE DATABASE."""

    def __init__(self, dsn: str, password: str | None, timeout_s: float):
        self.host, self.port, self.database = endpoint(dsn)
        self.user = urlsplit(dsn).username or "root"
        self.password, self.timeout_s = password, timeout_s

    def _connect(self, database: str | None = None):
        import pymysql

        try:
            return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password or "",
                                   database=database, connect_timeout=5, autocommit=True)
        except pymysql.MySQLError as exc:
            raise ProbeError(f"scratch server: {first_line(exc)}", unreachable=True) from None

    def _admin(self, statement: str) -> None:
        with self._connect() as conn, conn.cursor() as cursor:
            cursor.execute(statement.format(f"`{self.database}`"))

    def create(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {}")
        self._admin("CREATE DATABASE {}")

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {}")

    def exists(self) -> bool:
        return bool(self.query_admin("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                                     (self.database,))[0][0])

    def query_admin(self, sql: str, params=None):
        with self._connect() as conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def restore(self, path: Path, format: str) -> None:
        env = {**os.environ, "MYSQL_PWD": self.password or ""}
        command = ["mysql", "--no-defaults", f"--host={self.host}", f"--port={self.port}", f"--user={self.user}",
                   "--connect-timeout=5", self.database]
        code, stderr = _feed(command, env, path, format.endswith("_gz"), self.timeout_s)
        if code != 0:
            raise RestoreFailed(first_error(stderr) or f"mysql exited {code}")

    def query(self, sql: str, params=None) -> list[tuple]:
        with self._connect(self.database) as conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def table_exists(self, table: str) -> bool:
        return bool(self.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                               "AND table_name = %s", (self.database, table))[0][0])

    def row_count(self, table: str) -> int:
        return self.query(f"SELECT count(*) FROM `{table}`")[0][0]

    def newest(self, table: str, column: str):
        return self.query(f"SELECT max(`{column}`) FROM `{table}`")[0][0]


def open_scratch(dsn: str, password: str | None, timeout_s: float):
    return (MySqlScratch if dsn.startswith("mysql://") else PostgresScratch)(dsn, password, timeout_s)
