"""The ``restore`` step: the latest backup of a declared set, restored by the restore drill's own engine
(opsproof.backups.restore), as the recovered system rather than a scratch copy.

Logical formats go into a database target of the scenario (``into``): its database is dropped and created
afresh, then restored strictly (``pg_restore --exit-on-error``, ``psql -v ON_ERROR_STOP=1
--single-transaction``, ``mysql`` without ``--force``), its password passed through the tools'
environment. pgBackRest and pg_basebackup sets go into ``data_dir`` (``<data_dir>/pgdata``), restored and
not started: a later step starts it as the team does. The data directory is refused, as the restore
drill refuses it, when it overlaps a running target's data directory, a repository or the backups, or
holds files of something else. Nothing is removed afterwards: what it restored is the recovered system.
"""

from __future__ import annotations

import time

from opsproof.drills.runner import StepFailed
from opsproof.errors import first_line


def _dsn(target) -> str:
    if target.kind == "postgres":
        return target.dsn
    return f"mysql://{target.user}@{target.host}:{target.port}/{target.database or ''}"


def step(step, context):
    """The ``restore`` step's action."""
    backup = context.target(step.backup)

    def do(deadline: float | None) -> str:
        from opsproof.backups.location import open_location
        from opsproof.backups.restore import restore_step
        from opsproof.backups.scratch import RestoreFailed
        from opsproof.environment.backups import RestoreInto

        seconds = max(1.0, deadline - time.monotonic()) if deadline is not None else step.timeout
        into = context.target(step.into) if step.into else None
        chosen = backup.model_copy(update={"restore_into": RestoreInto.model_construct(
            dsn=_dsn(into) if into else None, data_dir=step.data_dir, password=into.password if into else None,
            scratch=False, timeout_s=seconds)})
        if step.data_dir:
            from opsproof.backups.datadir import data_dir_refusal

            refused = data_dir_refusal(context.environment, chosen)
            if refused:
                raise StepFailed(refused)
        location = open_location(backup.location, backup.s3) if backup.location else None
        password = into.password.get_secret_value() if into and into.password else None
        source = backup.source_in(context.environment)
        engine = restore_step(chosen, location, password, getattr(source, "dsn", None))
        latest = engine.latest()
        if context.record is not None:
            record = context.record
            record.backup_set, record.backup_id = backup.name, latest.name
            record.backup_time = latest.modified_at.isoformat(timespec="seconds")
        try:
            if step.data_dir:
                restored = engine.restore_files(latest)
            else:
                engine.restore(latest)
                restored = into.where
        except RestoreFailed as error:
            raise StepFailed(f"{backup.where} {latest.name}: {first_line(error)}") from None
        finally:
            if hasattr(engine, "remove_fetched"):
                engine.remove_fetched()
            if hasattr(location, "close"):
                location.close()
        return f"{backup.where} {latest.name} (taken {latest.modified_at:%Y-%m-%dT%H:%M:%SZ}) restored into {restored}"

    return do
