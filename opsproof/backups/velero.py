"""Velero backups of a Kubernetes cluster: Backup, Schedule and BackupStorageLocation objects, read-only.

Read through the Kubernetes target the set names (its kubeconfig and context, one attempt per request,
each bounded by the request timeout). Objects stay the API's JSON.

Which backup is "the latest": the newest *finished* one (Completed, PartiallyFailed, Failed,
FailedValidation), by ``status.startTimestamp`` (``metadata.creationTimestamp`` for backups that never
started, such as FailedValidation). A backup still running at check time (New, InProgress,
WaitingForPluginOperations*, Finalizing*) is reported, not judged: it would fail every nightly run that
overlaps the schedule. One stuck in flight shows as the latest Completed backup ageing past the RPO.

>>> velero = Velero(kubernetes_probe, settings)               # doctest: +SKIP
>>> velero.latest()["status"]["phase"], velero.in_flight()   # doctest: +SKIP
('Completed', ['daily-20261202020012'])
"""

from __future__ import annotations

from datetime import datetime, timezone

from opsproof.kubernetes.pods import parse_time

GROUP, VERSION = "velero.io", "v1"
SCHEDULE_LABEL = "velero.io/schedule-name"
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def status_of(obj: dict) -> dict:
    return obj.get("status") or {}


def started_at(backup: dict) -> datetime:
    """When the backup started (or was created, for one that never started)."""
    return (parse_time(status_of(backup).get("startTimestamp"))
            or parse_time((backup.get("metadata") or {}).get("creationTimestamp")) or _EPOCH)


class Velero:
    def __init__(self, kubernetes_probe, settings):
        self.kubernetes, self.settings = kubernetes_probe, settings
        self._backups: list[dict] | None = None

    def backups(self) -> list[dict]:
        """The Backups that count (the schedule's, else all in the namespace), oldest first; listed once."""
        if self._backups is None:
            selector = f"{SCHEDULE_LABEL}={self.settings.schedule}" if self.settings.schedule else None
            items = self.kubernetes.custom_objects(GROUP, VERSION, self.settings.namespace, "backups", selector)
            self._backups = sorted(items, key=lambda b: (started_at(b), name_of(b)))
        return self._backups

    def latest(self) -> dict | None:
        """The newest finished backup, whatever its outcome."""
        finished = [b for b in self.backups() if status_of(b).get("phase") in FINISHED]
        return finished[-1] if finished else None

    def in_flight(self) -> list[str]:
        """Names of backups newer than the latest finished one that are still running."""
        latest = self.latest()
        after = self.backups()[self.backups().index(latest) + 1:] if latest else self.backups()
        return [name_of(b) for b in after if status_of(b).get("phase") not in (*FINISHED, "Deleting")]

    def latest_completed(self) -> dict | None:
        """The newest Completed backup: its completionTimestamp is the achieved recovery point."""
        completed = [b for b in self.backups() if status_of(b).get("phase") == "Completed"]
        return completed[-1] if completed else None

    def storage_location(self) -> dict | None:
        return self.kubernetes.custom_object(GROUP, VERSION, self.settings.namespace, "backupstoragelocations",
                                             self.settings.storage_location)

    def schedule(self) -> dict | None:
        return self.kubernetes.custom_object(GROUP, VERSION, self.settings.namespace, "schedules",
                                             self.settings.schedule)

    def close(self) -> None:
        self.kubernetes.close()
