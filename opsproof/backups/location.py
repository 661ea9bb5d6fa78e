"""Where backup files live: a local or mounted directory glob, or an S3-compatible bucket prefix.

>>> files = open_location("/backups/db_*.dump").files()          # doctest: +SKIP
>>> files[-1].name, files[-1].size_bytes, files[-1].modified_at  # doctest: +SKIP
('db_20261123.dump', 1834211, datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from opsproof.errors import ProbeError, first_line


@dataclass(frozen=True)
class BackupFile:
    """One backup as listed: name, size and modification time (UTC); ``ref`` is its path or key."""

    name: str
    ref: str
    size_bytes: int
    modified_at: datetime


class LocalLocation:
    """A directory glob; files sorted oldest first by modification time."""

    def __init__(self, pattern: str):
        self.pattern = os.path.expanduser(pattern)
        self.directory = Path(self.pattern).parent

    def files(self, pattern: str | None = None) -> list[BackupFile]:
        found = []
        for path in glob.glob(pattern or self.pattern):
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed between listing and stat
            if os.path.isfile(path):
                modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
                found.append(BackupFile(os.path.basename(path), path, stat.st_size, modified))
        return sorted(found, key=lambda f: (f.modified_at, f.name))

    def directories(self) -> list[BackupFile]:
        """Directories matching the glob (base backups), oldest first; the time is that of the
        ``backup_manifest`` pg_basebackup writes last, else the directory's; size is not summed (0)."""
        found = []
        for path in glob.glob(self.pattern):
            manifest = os.path.join(path, "backup_manifest")
            try:
                stat = os.stat(manifest if os.path.isfile(manifest) else path)
            except OSError:
                continue
            if os.path.isdir(path):
                modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
                found.append(BackupFile(os.path.basename(path), path, 0, modified))
        return sorted(found, key=lambda f: (f.modified_at, f.name))

    def beside(self, name: str) -> BackupFile | None:
        """A file in the backups' directory (a manifest, a sidecar), or None."""
        matches = self.files(str(self.directory / name))
        return matches[-1] if matches else None

    def fetch(self, backup: BackupFile, into: Path) -> Path:
        """Local files are read in place."""
        return Path(backup.ref)

    def read_bytes(self, backup: BackupFile) -> bytes:
        return Path(backup.ref).read_bytes()

    def describe(self) -> str:
        return self.pattern


class S3Location:
    """``s3://bucket/prefix*.dump`` on any S3-compatible endpoint, through boto3."""

    def __init__(self, url: str, endpoint_url=None, region="us-east-1", access_key_id=None,
                 secret_access_key=None, timeout_s: float = 10.0):
        bucket, _, key_pattern = url.removeprefix("s3://").partition("/")
        self.url, self.bucket, self.key_pattern = url, bucket, key_pattern
        self.prefix = key_pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        self.directory = key_pattern.rsplit("/", 1)[0] + "/" if "/" in key_pattern else ""
        self._settings = dict(endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key_id,
                              aws_secret_access_key=secret_access_key)
        self.timeout_s = timeout_s
        self._client = None

    def _s3(self):
        if self._client is None:
            import boto3  # imported lazily: only environments with S3 backups need it
            from botocore.config import Config

            config = Config(connect_timeout=self.timeout_s, read_timeout=self.timeout_s,
                            retries={"max_attempts": 2})
            self._client = boto3.client("s3", config=config, **self._settings)
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(*args, **kwargs)
        except EndpointConnectionError as exc:
            raise ProbeError(f"{what}: {first_line(exc)}", unreachable=True) from None
        except (BotoCoreError, ClientError) as exc:
            raise ProbeError(f"{what}: {first_line(exc)}") from None

    def files(self, key_pattern: str | None = None) -> list[BackupFile]:
        pattern = key_pattern or self.key_pattern
        prefix = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        found = []
        paginator = self._s3().get_paginator("list_objects_v2")
        pages = self._call(f"list s3://{self.bucket}/{prefix}", lambda: list(
            paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        for page in pages:
            for item in page.get("Contents", []):
                if fnmatch.fnmatchcase(item["Key"], pattern):
                    name = item["Key"].rsplit("/", 1)[-1]
                    found.append(BackupFile(name, item["Key"], item["Size"],
                                            item["LastModified"].astimezone(timezone.utc)))
        return sorted(found, key=lambda f: (f.modified_at, f.name))

    def beside(self, name: str) -> BackupFile | None:
        matches = self.files(self.directory + name)
        return matches[-1] if matches else None

    def fetch(self, backup: BackupFile, into: Path) -> Path:
        into.mkdir(parents=True, exist_ok=True)
        target = into / backup.name
        self._call(f"get s3://{self.bucket}/{backup.ref}", self._s3().download_file, self.bucket, backup.ref,
                   str(target))
        return target

    def read_bytes(self, backup: BackupFile) -> bytes:
        response = self._call(f"get s3://{self.bucket}/{backup.ref}", self._s3().get_object,
                              Bucket=self.bucket, Key=backup.ref)
        return response["Body"].read()

    def describe(self) -> str:
        return self.url

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def open_location(location: str, s3=None):
    if location.startswith("s3://"):
        secret = lambda v: v.get_secret_value() if v is not None else None  # noqa: E731
        settings = s3
        return S3Location(location, settings.endpoint_url, settings.region, secret(settings.access_key_id),
                          secret(settings.secret_access_key), settings.timeout_s)
    return LocalLocation(location)
