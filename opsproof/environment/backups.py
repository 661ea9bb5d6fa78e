"""Backup sets: what is backed up, where the files are, how they are checked and restored.

A set names its source target (``of: postgres.main``), a ``location`` (a directory glob, a path glob on
a host target with ``on: host.db1``, or ``s3://bucket/prefix*.dump`` with ``s3`` connection settings; for
``pg_basebackup`` a glob of base backup directories; ``pgbackrest`` and ``barman`` name their repository
instead), a ``format``, the RPO and RTO as durations ("24h", "30m"), and optionally a checksum manifest, a
retention policy, expected tables and a scratch ``restore_into`` target for the destructive restore drill.
``files`` archives (tar, tar.gz, zip of file storage or secrets) need no source, or name their host.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator

from opsproof.environment.base import Duration, Model, Target
from opsproof.environment.datastores import Invariant
from opsproof.environment.limits import LIMIT_KEYS
from opsproof.environment.kubernetes import Name as KubernetesName

FORMATS = ("pg_custom", "pg_plain", "pg_plain_gz", "mysqldump_gz", "redis_rdb", "pgbackrest", "pg_basebackup",
           "barman", "velero", "files")
SOURCE_KIND = {"pg_custom": "postgres", "pg_plain": "postgres", "pg_plain_gz": "postgres",
               "pgbackrest": "postgres", "pg_basebackup": "postgres", "barman": "postgres",
               "mysqldump_gz": "mysql", "redis_rdb": "redis", "velero": "kubernetes", "files": "host"}
REPOSITORY_FORMATS = ("pgbackrest", "barman", "velero")  # a tool's catalogue, not files at a location
REMOTE_FORMATS = ("pg_custom", "pg_plain", "pg_plain_gz", "mysqldump_gz", "redis_rdb", "files")  # readable over ssh
# On a host, the location is a glob its shell expands: letters, digits, a few path characters and * ? [ ] ! only.
SHELL_SAFE_GLOB = re.compile(r"^[A-Za-z0-9._/*?\[\]!+:@%,=~-]+$")
LOGICAL_RESTORE_FORMATS = ("pg_custom", "pg_plain", "pg_plain_gz", "mysqldump_gz")  # into restore_into.dsn
PHYSICAL_RESTORE_FORMATS = ("pgbackrest", "pg_basebackup")  # into restore_into.data_dir
WAL_FORMATS = PHYSICAL_RESTORE_FORMATS  # physical sets whose restore replays archived WAL
Fraction = Annotated[float, Field(gt=0, lt=1)]
SourceName = Annotated[str, StringConstraints(pattern=r"^(postgres|mysql|redis|kubernetes|host)\.[A-Za-z0-9_.-]+$")]


class S3Settings(Model):
    """An S3-compatible endpoint (AWS, MinIO, Ceph...); credentials are ``${VAR}`` references."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class PgBackRestSettings(Model):
    stanza: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
    config: str | None = Field(None, description="pgbackrest.conf path (default: pgbackrest's own)")
    verify: bool = Field(False, description="also run `pgbackrest verify` (reads the whole repository)")
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0


class BarmanSettings(Model):
    server: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
    config: str | None = Field(None, description="barman.conf path (default: barman's own)")
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0


class VeleroSettings(Model):
    """Velero Backups of the cluster (velero.io/v1 objects read through the Kubernetes target's API)."""

    namespace: KubernetesName = "velero"
    schedule: KubernetesName | None = Field(None, description="only this Schedule's backups count (default: all)")
    storage_location: KubernetesName | None = Field(None, description="BackupStorageLocation that must be Available")
    warnings: Annotated[int, Field(ge=0)] = Field(0, description="most warnings the latest backup may have")
    errors: Annotated[int, Field(ge=0)] = Field(0, description="most errors; above 0 accepts PartiallyFailed")
    location_validation_max_age: Duration = 3600.0
    timeout_s: Annotated[float, Field(gt=0, le=600)] | None = Field(
        None, description="per API request (default: the Kubernetes target's request_timeout_s)")


class BaseBackupSettings(Model):
    """pg_verifybackup of the latest base backup (a plain-format ``pg_basebackup -D`` directory)."""

    wal_included: bool = Field(True, description="taken with -X stream/fetch; false adds --no-parse-wal")
    timeout_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0


class WalArchiveSettings(Model):
    """The WAL archive a physical set needs for point-in-time recovery: checked for holes since its base backup."""

    location: str | None = Field(None, description="directory of archived segments (archive_command's target); "
                                                   "pgbackrest: default the stanza's repository archive")
    delayed_after: Duration = Field(300.0, description="a missing newest segment younger than this is delayed")
    from_backup: bool = Field(True, description="from the latest base backup's first segment, else the oldest archived")

    @model_validator(mode="after")
    def _local(self):
        if self.location and "://" in self.location:
            raise ValueError("location: a local (or mounted) WAL archive directory, not a URL")
        return self


class Retention(Model):
    """The retention policy as it must hold: at least ``min_count`` backups kept, the oldest at least
    ``oldest_min_age`` old (a pruning job that deletes too much, or backups that started only lately)."""

    min_count: Annotated[int, Field(ge=1)] | None = None
    oldest_min_age: Duration | None = Field(None, description="the oldest backup kept is at least this old: 7d")

    @model_validator(mode="after")
    def _something(self):
        if self.min_count is None and self.oldest_min_age is None:
            raise ValueError("give min_count, oldest_min_age or both")
        return self


class TableExpectation(Model):
    min_rows: Annotated[int, Field(ge=0)] = 0
    timestamp: str | None = Field(None, description="column whose newest value gives the achieved RPO")


class InvariantQuery(Invariant):
    """User SQL run on the restored copy (orphans, ledger imbalance): the invariant shape of every section,
    bounds only (``max``, ``min``); ``max: 0`` when neither is given."""

    bounds_only: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _none_left(cls, data):
        if isinstance(data, dict) and not any(key in data for key in LIMIT_KEYS):
            data = {**data, "max": 0}
        return data


class RestoreInto(Model):
    """Where the drill restores: a scratch database (``dsn``, dropped and recreated) for logical dumps,
    or a scratch ``data_dir`` for physical backups (restored into ``<data_dir>/pgdata``, started, removed)."""

    dsn: Annotated[str, StringConstraints(pattern=r"^(postgres(ql)?|mysql)://\S+/[A-Za-z0-9_]+$")] | None = None
    data_dir: Annotated[str, StringConstraints(pattern=r"^/")] | None = Field(
        None, description="absolute path on this host; the drill owns it (marker file) and removes it afterwards")
    password: SecretStr | None = None
    scratch: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0

    @model_validator(mode="after")
    def _one_target(self):
        if (self.dsn is None) == (self.data_dir is None):
            raise ValueError("give exactly one of dsn (a scratch database, for logical dumps) or data_dir "
                             "(a scratch data directory, for pgbackrest and pg_basebackup)")
        return self


class BackupTarget(Target):
    kind: ClassVar[str] = "backups"
    of: SourceName | None = Field(None, description="the target backed up (a files set: none, or its host)")
    format: Literal[FORMATS]  # type: ignore[valid-type]
    location: str | None = Field(None, description="directory glob, or s3://bucket/prefix*.ext")
    on: str | None = Field(None, description="host.NAME: location is a path glob on that host, read over ssh")
    read_timeout_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        600.0, description="on a host: each read of a backup's content (checksum, gzip, pg_restore, archive, fetch)")
    retention: Retention | None = None
    s3: S3Settings | None = None
    pgbackrest: PgBackRestSettings | None = None
    barman: BarmanSettings | None = None
    velero: VeleroSettings | None = None
    basebackup: BaseBackupSettings = Field(default_factory=BaseBackupSettings)
    rpo: Duration
    rto: Duration
    manifest: str | None = Field(None, description="sha256sum-style file beside the backups (name or glob)")
    history: Annotated[int, Field(ge=1, le=100)] = 5
    size_drop_max_fraction: Fraction = 0.5
    tables: dict[str, TableExpectation] = Field(default_factory=dict)
    row_count_tolerance_pct: Annotated[float, Field(ge=0, le=100)] = 0.0
    invariants: dict[str, InvariantQuery] = Field(default_factory=dict)
    restore_into: RestoreInto | None = None
    wal_archive: WalArchiveSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data):
        """YAML 1.1 reads a bare ``on:`` key as the boolean true; in a backup set it can only mean ``on``."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @field_validator("location")
    @classmethod
    def _supported_scheme(cls, location: str | None):
        scheme, separator, _ = (location or "").partition("://")
        if separator and scheme != "s3":
            raise ValueError(f"scheme {scheme}:// is not supported: give a local (or mounted) path glob, "
                             f"s3://bucket/prefix, or a path glob on a host target with on: host.NAME")
        return location

    @field_validator("on")
    @classmethod
    def _on_a_host(cls, on: str | None):
        if on is not None and not on.startswith("host."):
            raise ValueError(f"{on} is not a host target: on: names a host target of this file (host.NAME)")
        return on

    @model_validator(mode="after")
    def _consistent(self):
        if self.of is None and self.format != "files":
            raise ValueError(f"format {self.format} needs of: the target it backs up")
        kind = self.of.split(".", 1)[0] if self.of else SOURCE_KIND[self.format]
        if SOURCE_KIND[self.format] != kind:
            raise ValueError(f"format {self.format} backs up {SOURCE_KIND[self.format]} targets, not {self.of}")
        if self.format == "pgbackrest":
            if self.pgbackrest is None:
                raise ValueError("format pgbackrest needs a pgbackrest: {stanza: ...} section")
        elif self.format == "barman":
            if self.barman is None:
                raise ValueError("format barman needs a barman: {server: ...} section")
        elif self.format == "velero":
            if self.velero is None:
                raise ValueError("format velero needs a velero: {namespace: ..., schedule: ...} section")
            if self.location:
                raise ValueError("format velero reads Backup objects from the cluster's API: remove location")
        elif not self.location:
            raise ValueError(f"format {self.format} needs a location (directory glob or s3:// URL)")
        if self.format == "pg_basebackup" and self.location.startswith("s3://"):
            raise ValueError("format pg_basebackup verifies a local (or mounted) directory, not s3://")
        into = self.restore_into
        if into is not None and self.format not in (*LOGICAL_RESTORE_FORMATS, *PHYSICAL_RESTORE_FORMATS):
            raise ValueError(f"restore_into: the restore drill restores logical dumps, pgbackrest and "
                             f"pg_basebackup, not {self.format}")
        if into is not None and into.data_dir and self.format not in PHYSICAL_RESTORE_FORMATS:
            raise ValueError(f"restore_into.data_dir: format {self.format} restores into a scratch database "
                             f"(restore_into.dsn), not a data directory")
        if into is not None and into.dsn and self.format not in LOGICAL_RESTORE_FORMATS:
            raise ValueError(f"restore_into.dsn: format {self.format} restores into a scratch data directory "
                             f"(restore_into.data_dir), not a database")
        if self.wal_archive is not None and self.format not in WAL_FORMATS:
            raise ValueError(f"wal_archive: WAL continuity is checked for pgbackrest and pg_basebackup sets, "
                             f"not {self.format}")
        if self.wal_archive is not None and self.format != "pgbackrest" and not self.wal_archive.location:
            raise ValueError(f"wal_archive: format {self.format} needs wal_archive.location (the archive directory)")
        if self.retention is not None and self.format in REPOSITORY_FORMATS:
            raise ValueError(f"retention: judged on the backups listed at a location, not on {self.format}'s "
                             f"catalogue")
        if self.on is not None:
            self._check_remote()
        if self.location and self.location.startswith("s3://") and self.s3 is None:
            object.__setattr__(self, "s3", S3Settings())
        return self

    def _check_remote(self) -> None:
        """``on: host.X``: a path glob its shell can expand safely, in a format that can be read over ssh."""
        if not self.location:
            raise ValueError("on: needs a location (the path glob on that host)")
        if self.location.startswith("s3://"):
            raise ValueError("on: an s3:// location is read from S3, not from a host: remove on")
        if self.format not in REMOTE_FORMATS:
            raise ValueError(f"on: format {self.format} is verified in a local (or mounted) directory; "
                             f"over ssh: {', '.join(REMOTE_FORMATS)}")
        for key, value in (("location", self.location), ("manifest", self.manifest)):
            if value is not None and not (SHELL_SAFE_GLOB.match(value) and (key != "location" or value[0] == "/")):
                raise ValueError(f"{key}: on a host, an absolute path glob of letters, digits, ._-+/:@%,=~ and "
                                 f"* ? [ ] ! (the host's shell expands it), not {value!r}")

    @classmethod
    def check_section(cls, targets: dict[str, BackupTarget], environment) -> None:
        for backup in targets.values():
            if backup.restore_into is not None and environment.tier == "production":
                raise ValueError(f"backups.{backup.name}.restore_into: environment {environment.name} is tier "
                                 f"production, which is read-only: restore drills run from a staging or sandbox "
                                 f"file that names the same backups")
            if backup.of and backup.source_in(environment) is None:
                raise ValueError(f"backups.{backup.name}.of: {backup.of} is not a target in this environment")
            host = backup.host_in(environment)
            if backup.on and host is None:
                raise ValueError(f"backups.{backup.name}.on: {backup.on} is not a target in this environment")
            if host is not None and not host.host.startswith(("ssh://", "local://")):
                raise ValueError(f"backups.{backup.name}.on: {backup.on} is {host.host}; backups on a host are "
                                 f"read over OpenSSH (ssh://) or locally (local://)")
        scratch_users: dict[tuple, str] = {}
        for backup in targets.values():  # two drills dropping one scratch database would collide
            if backup.restore_into is None:
                continue
            if backup.restore_into.data_dir:  # a physical drill owns its data directory
                database = ("data directory", os.path.normpath(backup.restore_into.data_dir))
            else:
                where = urlsplit(backup.restore_into.dsn)
                try:
                    database = ("database", where.hostname, where.port, where.path)
                except ValueError:  # host:abc/db: the drill could not connect; say where, not a bare ValueError
                    raise ValueError(f"backups.{backup.name}.restore_into.dsn: the port is not a number") from None
            if database in scratch_users:
                raise ValueError(f"backups.{backup.name}.restore_into: the same scratch {database[0]} as "
                                 f"backups.{scratch_users[database]}")
            scratch_users[database] = backup.name

    def source_in(self, environment) -> Target | None:
        """The target this set backs up (``of: postgres.main``), or None when the file declares none."""
        kind, _, name = (self.of or "").partition(".")
        return (getattr(environment, kind, None) or {}).get(name)

    def host_in(self, environment) -> Target | None:
        """The host target the location is on (``on: host.db1``), or None (local, mounted or S3)."""
        return (getattr(environment, "host", None) or {}).get(self.on.partition(".")[2]) if self.on else None

    @property
    def rpo_s(self) -> float:
        return self.rpo

    @property
    def rto_s(self) -> float:
        return self.rto
