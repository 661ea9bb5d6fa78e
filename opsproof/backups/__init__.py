"""Backup probe: lists a backup set's files and judges the latest one, read-only.

>>> sets = BackupProbe(backup_target, environment)       # doctest: +SKIP
>>> latest = sets.latest(); sets.age_s(latest) / 3600    # doctest: +SKIP
5.2
>>> sets.gzip_stream(), sets.closing_marker()            # doctest: +SKIP
('complete', 'missing')
"""

from __future__ import annotations

import shutil
import statistics
from datetime import datetime, timezone
from pathlib import Path

from opsproof.backups import formats
from opsproof.backups.location import BackupFile, open_location
from opsproof.errors import ProbeError
from opsproof.processes import owned_tempdir


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def location_of(target, environment):
    """Where a set's files are: on its ``on:`` host over ssh (a ``local://`` host reads here), in S3, or here."""
    host = target.host_in(environment)
    if host is not None and not host.host.startswith("local://"):
        from opsproof.backups.remote import SshLocation

        return SshLocation(target.location, host, target.read_timeout_s)
    return open_location(target.location, target.s3)


class BackupProbe:
    """``open_probe(target, environment)`` opens the probe of a set's source (Velero reads its cluster's API)."""

    def __init__(self, target, environment, open_probe=None):
        self.target, self.environment = target, environment
        self._open_probe = open_probe
        self.location = location_of(target, environment) if target.location else None
        self._remote = hasattr(self.location, "channel")  # on a host over ssh: judged on the host, or streamed
        self._scans: dict[tuple[str, bool], object] = {}
        self._files: list[BackupFile] | None = None
        self._fetch_dir: Path | None = None
        self._local: dict[str, Path] = {}
        self._barman = None
        self._pgbackrest = None
        self._velero = None
        self._wal = None

    # --- listing -------------------------------------------------------------------------------
    def files(self) -> list[BackupFile]:
        """The set's backups, oldest first (listed once per run)."""
        if self._files is None:
            physical = self.target.format == "pg_basebackup"
            self._files = self.location.directories() if physical else self.location.files()
        return self._files

    def latest(self) -> BackupFile | None:
        files = self.files()
        return files[-1] if files else None

    def require_latest(self) -> BackupFile:
        latest = self.latest()
        if latest is None:
            raise ProbeError(f"no backup matches {self.location.describe()}")
        return latest

    @staticmethod
    def age_s(backup: BackupFile, now: datetime | None = None) -> float:
        return ((now or datetime.now(timezone.utc)) - backup.modified_at).total_seconds()

    def previous_sizes(self) -> list[int]:
        """Sizes of the up to ``history`` backups before the latest."""
        return [f.size_bytes for f in self.files()[:-1][-self.target.history:]]

    def size_floor_bytes(self) -> int | None:
        """The smallest size the latest may have: the median of recent sizes less the allowed drop."""
        sizes = self.previous_sizes()
        if not sizes:
            return None
        return int(statistics.median(sizes) * (1 - self.target.size_drop_max_fraction))

    # --- content -------------------------------------------------------------------------------
    def local_copy(self, backup: BackupFile) -> Path:
        """A path to read: the file itself when local, a download (kept for this run) when remote."""
        if backup.ref not in self._local:
            if self._fetch_dir is None:
                self._fetch_dir = owned_tempdir("opsproof-backup-")  # a killed run's is removed by the next one
            self._local[backup.ref] = self.location.fetch(backup, self._fetch_dir)
        return self._local[backup.ref]

    def sha256(self, backup: BackupFile) -> str:
        if self._remote:
            return self.location.sha256(backup)
        return formats.sha256_of(self.local_copy(backup))

    def manifest_sha256(self, backup: BackupFile) -> str | None:
        """The sha256 the manifest records for ``backup``; ProbeError when no manifest is found."""
        manifest = self.location.beside(self.target.manifest)
        if manifest is None:
            raise ProbeError(f"manifest {self.target.manifest} not found beside {self.location.describe()}")
        return formats.parse_manifest(self.location.read_bytes(manifest).decode(errors="replace")).get(backup.name)

    def gzip_stream(self, backup: BackupFile) -> str:
        if self._remote:
            return self.location.gzip_test(backup)
        return formats.gzip_stream(self.local_copy(backup))

    def closing_marker(self, backup: BackupFile) -> str:
        if self._remote:
            return formats.marker_in(self.location.tail(backup, self.target.format in formats.GZIPPED),
                                     self.target.format)
        return formats.closing_marker(self.local_copy(backup), self.target.format)

    def custom_dump_read(self, backup: BackupFile) -> str:
        if self._remote:
            return formats.read_verdict(self.location.piped(backup, ["pg_restore", "-f", "/dev/null"]))
        return formats.custom_dump_read(self.local_copy(backup))

    def rdb_check(self, backup: BackupFile) -> str:
        return formats.rdb_check(self.local_copy(backup))

    # --- files: archives of file storage and secrets ----------------------------------------------
    def archive(self, backup: BackupFile, verify: bool = True):
        """The archive's ArchiveScan (verdict, kind, members, total bytes), read once per run."""
        if (backup.ref, verify) not in self._scans:
            self._scans[(backup.ref, verify)] = self._scan(backup, verify)
        return self._scans[(backup.ref, verify)]

    def _scan(self, backup: BackupFile, verify: bool):
        from opsproof.backups import archives

        if not self._remote:
            return archives.scan_path(self.local_copy(backup), verify)
        with self.location.open(backup) as stream:  # a tar streams through the ssh channel
            try:
                found = archives.scan(stream.stdout, verify)
            except archives.ZipNeedsFile:
                stream.finish(stopped_early=True)
                return archives.scan_zip(self.local_copy(backup), verify)
            stream.finish(stopped_early=found.verdict != "complete")
        return found

    def previous_archives(self) -> list:
        """Member counts and sizes of the up to ``history`` archives before the latest (whole ones only)."""
        scans = [self.archive(f, verify=False) for f in self.files()[:-1][-self.target.history:]]
        return [found for found in scans if found.verdict == "complete"]

    def archive_floors(self) -> tuple[int, int] | None:
        """The fewest members and bytes the latest archive may hold: recent medians less the allowed drop."""
        previous = self.previous_archives()
        if not previous:
            return None
        keep = 1 - self.target.size_drop_max_fraction
        return (int(statistics.median(p.members for p in previous) * keep),
                int(statistics.median(p.total_bytes for p in previous) * keep))

    def verify_base_backup(self, backup: BackupFile) -> str:
        from opsproof.backups.verify_physical import verify_base_backup

        settings = self.target.basebackup
        return verify_base_backup(Path(backup.ref), settings.wal_included, settings.timeout_s)

    # --- pgBackRest ----------------------------------------------------------------------------
    def pgbackrest(self):
        """The set's pgBackRest stanza; its ``info`` is read once per run."""
        from opsproof.backups.pgbackrest import PgBackRest

        if self._pgbackrest is None:
            self._pgbackrest = PgBackRest.of(self.target.pgbackrest)
        return self._pgbackrest

    def wal_archive(self):
        """The set's WAL archive (``wal_archive:``), listed once per run."""
        from opsproof.backups.wal import WalArchive

        if self._wal is None:
            self._wal = WalArchive(self)
        return self._wal

    def barman(self):
        """The set's Barman server; its catalogue is listed once per run."""
        from opsproof.backups.barman import Barman

        if self._barman is None:
            settings = self.target.barman
            self._barman = Barman(settings.server, settings.config, settings.timeout_s)
        return self._barman

    def velero(self):
        """The set's Velero objects, read through its Kubernetes target (``of: kubernetes.prod``)."""
        if self._velero is None:
            from opsproof.backups.velero import Velero

            settings = self.target.velero
            cluster = self.target.source_in(self.environment)
            if settings.timeout_s:
                cluster = cluster.model_copy(update={"request_timeout_s": settings.timeout_s})
            self._velero = Velero(self._open_probe(cluster, self.environment), settings)
        return self._velero

    # --- restore drill -------------------------------------------------------------------------
    def source_dsn(self) -> str | None:
        source = self.target.source_in(self.environment)
        if getattr(source, "dsn", None):
            return source.dsn
        if getattr(source, "host", None):  # MySQL targets are host/port/database
            return f"{source.kind}://{source.host}:{source.port}/{getattr(source, 'database', None) or ''}"
        return None

    def refusal(self) -> str | None:
        from opsproof.backups.restore import refusal

        return refusal(self.environment, self.target)

    def drill(self, on_record=None):
        """Run the restore drill (its DrillRecord); ``on_record(record)`` gets it even when the drill raises."""
        from opsproof.backups.restore import Drill

        into = self.target.restore_into
        drill = Drill(self.target, self.location, _secret(into.password), source_dsn=self.source_dsn())
        return drill.run(on_record)

    def close(self) -> None:
        if self._fetch_dir is not None:
            shutil.rmtree(self._fetch_dir, ignore_errors=True)
            self._fetch_dir = None
        if self._velero is not None:
            self._velero.close()
        if hasattr(self.location, "close"):
            self.location.close()
