"""Which database a restore target really is: the drill compares identities the servers report, never
spellings. 127.1, 0.0.0.0, [::ffff:127.0.0.1], the machine's name and %31%32%37.0.0.1 all reach 127.0.0.1.

PostgreSQL: the cluster's ``system_identifier`` (``pg_control_system()``) and the database's OID, else its
name. MySQL: ``@@server_uuid``; MariaDB has none, so ``@@hostname``, ``@@port``, ``@@datadir`` and
``@@server_uid`` together; and the schema name, compared case-insensitively. The same server always reports
the same values, so it never looks different; clones (a copied data directory, replicas, containers with
one hostname) may look the same and are refused, which is the safe way round.

>>> source = target_identity(environment.postgres["main"])                  # doctest: +SKIP
>>> str(source), scratch_identity(backup.restore_into).same_as(source)        # doctest: +SKIP
('database bankchain (oid 16388) of cluster 7714670819755121574', False)
"""

from __future__ import annotations

from dataclasses import dataclass

from opsproof.backups.scratch import describe, mysql_params, pg_params
from opsproof.errors import first_line


class IdentityUnknown(Exception):
    """The server could not say who it is (refused, timed out, no such database); the message says why."""


@dataclass(frozen=True)
class DatabaseIdentity:
    server: tuple  # what no alias changes
    server_name: str  # "cluster 7714670819755121574", "MariaDB server db1:3306 (/var/lib/mysql/)"
    database: str | None  # None: a target naming no database covers every one of its server
    oid: int | None = None  # PostgreSQL, when the database exists
    noun: str = "database"

    def same_as(self, other: DatabaseIdentity) -> bool:
        """True unless proven apart: another server, or another database of the same server."""
        if self.server != other.server:
            return False
        if self.database is None or other.database is None:
            return True
        if self.oid is not None and other.oid is not None:
            return self.oid == other.oid
        return self.database.casefold() == other.database.casefold()

    def __str__(self) -> str:
        if self.database is None:
            return f"every {self.noun} of {self.server_name}"
        oid = f" (oid {self.oid})" if self.oid is not None else ""
        return f"{self.noun} {self.database}{oid} of {self.server_name}"


def postgres_identity(params: dict, lookup: str | None = None, timeout_s: float = 5) -> DatabaseIdentity:
    """The cluster and database a libpq connection reaches: the connected database, or ``lookup`` in its
    cluster (a scratch database that may not exist yet), on a read-only session."""
    import psycopg

    options = " ".join(filter(None, (params.get("options"), "-c statement_timeout=5000",
                                     "-c default_transaction_read_only=on")))
    settings = {"connect_timeout": str(max(2, round(timeout_s))), "application_name": "opsproof-drill-guard",
                **params, "options": options}
    try:
        with psycopg.connect(**settings, autocommit=True) as conn:
            sysid, name, oid = conn.execute(
                "SELECT c.system_identifier, n.name, d.oid FROM pg_control_system() c "
                "CROSS JOIN (SELECT coalesce(%s::text, current_database()) AS name) n "
                "LEFT JOIN pg_database d ON d.datname = n.name", (lookup,)).fetchone()
    except (psycopg.Error, OSError) as error:
        raise IdentityUnknown(first_line(error)) from None
    return DatabaseIdentity(("postgresql", sysid), f"cluster {sysid}", name, oid)


def mysql_identity(host: str, port: int, user: str, password: str | None, database: str | None,
                   timeout_s: float = 5) -> DatabaseIdentity:
    """The server (and schema) a MySQL or MariaDB connection reaches."""
    import pymysql

    try:
        with pymysql.connect(host=host, port=port, user=user, password=password or "", connect_timeout=timeout_s,
                             read_timeout=timeout_s, write_timeout=timeout_s) as conn, conn.cursor() as cursor:
            cursor.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                           "('server_uuid', 'hostname', 'port', 'datadir', 'server_uid')")
            values = dict(cursor.fetchall())
    except (pymysql.MySQLError, OSError) as error:
        raise IdentityUnknown(first_line(error)) from None
    if values.get("server_uuid"):
        server, name = ("mysql", values["server_uuid"]), f"MySQL server {values['server_uuid']}"
    else:
        server = ("mariadb", *(values.get(k) for k in ("hostname", "port", "datadir", "server_uid")))
        name = f"MariaDB server {values.get('hostname')}:{values.get('port')} ({values.get('datadir')})"
    return DatabaseIdentity(server, name, database, noun="schema")


def target_identity(target) -> DatabaseIdentity:
    """A postgres or mysql target of the environment, reached with its own credentials."""
    password = target.password.get_secret_value() if target.password is not None else None
    if target.kind == "mysql":
        return mysql_identity(target.host, target.port, target.user, password, target.database,
                              target.connect_timeout_s)
    return postgres_identity(pg_params(target.dsn, password), timeout_s=target.connect_timeout_s)


def scratch_identity(into) -> DatabaseIdentity:
    """``restore_into.dsn``, reached as the drill reaches it (PostgreSQL: through its ``postgres`` database)."""
    password = into.password.get_secret_value() if into.password is not None else None
    if into.dsn.startswith("mysql://"):
        return mysql_identity(**mysql_params(into.dsn, password))
    params = pg_params(into.dsn, password)
    return postgres_identity({**params, "dbname": "postgres"}, lookup=params.get("dbname", ""))


def database_refusal(environment, backup) -> str | None:
    """Why ``restore_into.dsn`` must not be restored into: it is the source or another database target of the
    environment, or which database it is (or one of them is) cannot be established."""
    into, where = backup.restore_into, f"{backup.where} restore_into"
    try:
        scratch = scratch_identity(into)
    except IdentityUnknown as error:
        return (f"restore refused: {where}: cannot tell which database {describe(into.dsn)} is ({error}), so it "
                f"cannot be proven not to be the source or another target")
    source = backup.source_in(environment)
    kind = "mysql" if into.dsn.startswith("mysql://") else "postgres"
    targets = sorted((getattr(environment, kind, None) or {}).values(), key=lambda target: target is not source)
    for target in targets:
        try:
            found = target_identity(target)
        except IdentityUnknown as error:
            return (f"restore refused: {where}: cannot tell which database {target.where} is ({error}), so "
                    f"restore_into cannot be proven not to be it")
        if scratch.same_as(found):
            what = f"the source {backup.of} itself" if target is source else (
                f"{target.where}, a target this environment checks")
            same = f"both are {found}" if found.database else f"{target.where} names no database, so it is {found}"
            return f"restore refused: {where} is {what}: {same}"
    return None
