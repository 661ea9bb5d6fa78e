"""Scratch databases for the restore drill: create fresh, restore strictly, query, drop, confirm gone.

Strict means a restore error stops the restore: ``pg_restore --exit-on-error``, ``psql -v
ON_ERROR_STOP=1 --single-transaction``, ``mysql`` without ``--force``. A DSN is read as libpq reads it
(percent-decoding, query parameters); its password, inline or given apart, reaches the client tools
through the environment (PGPASSWORD, MYSQL_PWD), never their command line, where every local user
could read it in /proc/<pid>/cmdline.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from opsproof.backups.formats import first_error
from opsproof.errors import ProbeError, first_line

_CHUNK = 1 << 20
_SECRET_PARAMS = ("password", "sslpassword")  # libpq keywords that never go on a command line


def pg_params(dsn: str, password: str | None = None) -> dict[str, str]:
    """libpq's own reading of a PostgreSQL DSN as keywords; ``password``, when given, wins over the DSN's.

    >>> pg_params("postgresql://app:pw@%31%32%37.0.0.1/app")["host"]
    '127.0.0.1'
    """
    from psycopg.conninfo import conninfo_to_dict

    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    if password is not None:
        params["password"] = password
    return params


def mysql_params(dsn: str, password: str | None = None) -> dict:
    """host, port, user, password and database of a ``mysql://`` DSN, percent-decoded; ``password`` wins."""
    parts = urlsplit(dsn)
    return {"host": unquote(parts.hostname or "localhost"), "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": password if password is not None else unquote(parts.password or ""),
            "database": unquote(parts.path.lstrip("/"))}


def describe(dsn: str) -> str:
    """``host:port/database`` of a DSN, as the drill record names its target (no user, no password)."""
    if dsn.startswith("mysql://"):
        params = mysql_params(dsn)
        return f"{params['host']}:{params['port']}/{params['database']}"
    params = pg_params(dsn)
    return f"{params.get('host', 'localhost')}:{params.get('port', '5432')}/{params.get('dbname', '')}"


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
        self.params, self.timeout_s = pg_params(dsn, password), timeout_s
        self.database = self.params.get("dbname", "")
        self.admin_params = {**self.params, "dbname": "postgres"}
        self._session = None

    def _connect(self, params: dict):
        import psycopg

        try:
            return psycopg.connect(**{"connect_timeout": "5", "application_name": "opsproof-drill", **params},
                                   autocommit=True)
        except psycopg.Error as exc:
            raise ProbeError(f"scratch server: {first_line(exc)}", unreachable=True) from None

    def _admin(self, template: str) -> None:
        from psycopg import sql

        with self._connect(self.admin_params) as conn:
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
        with self._connect(self.admin_params) as conn:
            row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
        return bool(row[0])

    def _client(self) -> tuple[str, dict]:
        """The conninfo for pg_restore's and psql's ``-d`` (no secret in it) and their environment (the password)."""
        from psycopg.conninfo import make_conninfo

        if "sslpassword" in self.params:
            raise RestoreFailed("restore_into.dsn sets sslpassword, which pg_restore and psql could only take on "
                                "their command line: use a key file without a passphrase")
        env = {**os.environ, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": "opsproof-drill"}
        if "password" in self.params:
            env["PGPASSWORD"] = self.params["password"]
        return make_conninfo(**{k: v for k, v in self.params.items() if k not in _SECRET_PARAMS}), env

    def restore(self, path: Path, format: str) -> None:
        conninfo, env = self._client()
        if format == "pg_custom":
            command = ["pg_restore", "--exit-on-error", "--no-owner", "--no-privileges", "-d", conninfo, str(path)]
            try:
                result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise RestoreFailed(f"pg_restore did not finish within {self.timeout_s:g} s") from None
            code, stderr = result.returncode, result.stderr
        else:
            command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", conninfo, "-f", "-"]
            code, stderr = _feed(command, env, path, format.endswith("_gz"), self.timeout_s)
        if code != 0:
            raise RestoreFailed(first_error(stderr) or f"{command[0]} exited {code}")

    def query(self, sql, params=None) -> list[tuple]:
        """On one session to the restored database, opened at the first query and closed by ``drop``."""
        if self._session is None:
            self._session = self._connect(self.params)
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
        params = mysql_params(dsn, password)
        self.host, self.port, self.user, self.database = (params[k] for k in ("host", "port", "user", "database"))
        self.password, self.timeout_s = params["password"], timeout_s

    def _connect(self, database: str | None = None):
        import pymysql

        try:
            return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
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
        env = {**os.environ, "MYSQL_PWD": self.password}
        # --protocol=TCP: as pymysql connects; without it "localhost" would mean the machine's default socket
        command = ["mysql", "--no-defaults", "--protocol=TCP", f"--host={self.host}", f"--port={self.port}",
                   f"--user={self.user}", "--connect-timeout=5", self.database]
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
