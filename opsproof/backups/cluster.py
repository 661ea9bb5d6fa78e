"""The physical restore step: a pgBackRest stanza or a pg_basebackup directory, restored into
``<data_dir>/pgdata`` and started as a throwaway server, then stopped and removed.

The server runs as the unprivileged user on a free loopback port with its own socket directory, its
own ``pg_hba.conf`` (trust over that socket only, every TCP connection rejected) and archive_mode
off, so the copy never pushes WAL into the source's archive. The drill owns ``data_dir``: it writes a
marker file there first and refuses a non-empty directory without one. A drill killed mid-way leaves its
server running: the next drill stops it (verified to be that server) before touching the directory, and
touches nothing while any other process still holds it; it removes ``data_dir`` only once no process does.

>>> step = PhysicalRestore(backup_target, location, "postgresql://app@db/app")   # doctest: +SKIP
>>> scratch = step.restore(step.latest()); scratch.row_count("users"); step.clean_up()  # doctest: +SKIP
500
True
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from opsproof.backups.datadir import MARKER
from opsproof.backups.formats import first_error
from opsproof.backups.location import BackupFile
from opsproof.backups.scratch import PostgresScratch, RestoreFailed, pg_params
from opsproof.errors import ProbeError, first_line
from opsproof.processes import alive, free_port, give_to_unprivileged, holders, run_unprivileged, server_from

HBA = "local all all trust\nhost all all 0.0.0.0/0 reject\nhost all all ::/0 reject\n"


def _server_error(log: str) -> str:
    """The first FATAL or PANIC of a server log, without its timestamp prefix (``FATAL: could not ...``)."""
    for line in log.splitlines():
        match = re.search(r"\b(FATAL|PANIC):\s+(.*)", line)
        if match:
            return f"{match.group(1)}: {match.group(2).strip()}"
    return first_error(log)


class PhysicalRestore:
    """The restore step of a physical drill (see ``Drill``): latest(), restore() -> scratch, clean_up()."""

    def __init__(self, backup, location, source_dsn: str | None):
        from opsproof.postgres.binaries import bindir

        self.backup, self.location = backup, location
        self.timeout_s = backup.restore_into.timeout_s
        self.data_dir = Path(os.path.realpath(backup.restore_into.data_dir))
        self.pgdata, self.socket_dir = self.data_dir / "pgdata", self.data_dir / "socket"
        self.log = self.data_dir / "server.log"
        self.target = str(self.pgdata)
        source = pg_params(source_dsn) if source_dsn else {}
        self.user, self.database = source.get("user", "postgres"), source.get("dbname", "postgres")
        self.bindir = bindir()
        self.port: int | None = None
        self.scratch: PostgresScratch | None = None
        self.previous_leftovers: list[str] = []  # what a killed drill left here, and what became of it
        self.cleanup_left: list[str] = []  # what this drill could not remove

    # --- which backup --------------------------------------------------------------------------
    def _pgbackrest(self):
        from opsproof.backups.pgbackrest import PgBackRest

        return PgBackRest.of(self.backup.pgbackrest)

    def latest(self) -> BackupFile:
        if self.backup.format == "pgbackrest":
            latest = self._pgbackrest().latest()
            if latest is None:
                raise ProbeError(f"no backup in pgbackrest stanza {self.backup.pgbackrest.stanza}")
            return BackupFile(latest["label"], latest["label"], latest["size_bytes"] or 0, latest["stopped_at"])
        found = self.location.directories()
        if not found:
            raise ProbeError(f"no backup matches {self.location.describe()}")
        return found[-1]

    # --- restore and start ---------------------------------------------------------------------
    def _take_over(self) -> None:
        """Before touching data_dir: stop the server a killed drill left running from it; leave the directory
        as it is (ProbeError) while that fails or any other process still holds it."""
        if not self.data_dir.exists():
            return
        pid = server_from(self.pgdata)
        if pid is not None:
            left = f"server pid {pid} running from {self.pgdata}, left by a killed drill"
            if not self._stop_server(pid):
                raise ProbeError(f"{left}, did not stop: {self.data_dir} left as is")
            self.previous_leftovers.append(f"{left}: stopped")
        held = holders(self.data_dir)
        if held:
            raise ProbeError(f"{self.data_dir} is in use by {', '.join(held)}: left as is")

    def _prepare(self) -> None:
        self._take_over()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / MARKER).write_text("opsproof restore drill scratch directory: removed after each drill\n")
        os.chmod(self.data_dir, 0o755)  # the server user traverses it
        for old in (self.pgdata, self.socket_dir, self.data_dir / "tablespaces"):
            shutil.rmtree(old, ignore_errors=True)  # a previous drill's leftovers (the marker says so)
        (self.data_dir / "pg_hba.conf").write_text(HBA)
        self.log.write_text("")
        give_to_unprivileged(self.log)  # pg_ctl -l writes it as the server user
        for directory in (self.pgdata, self.socket_dir):
            directory.mkdir(mode=0o700)
            give_to_unprivileged(directory)

    def _run(self, args: list[str], what: str) -> subprocess.CompletedProcess:
        try:
            return run_unprivileged(args, timeout_s=self.timeout_s)
        except FileNotFoundError:
            raise RestoreFailed(f"{args[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise RestoreFailed(f"{what} did not finish within {self.timeout_s:g} s") from None

    def _restore_pgbackrest(self, latest: BackupFile) -> None:
        tablespaces = self.data_dir / "tablespaces"
        tablespaces.mkdir(mode=0o700)
        give_to_unprivileged(tablespaces)
        result = self._run(self._pgbackrest().command(
            "restore", f"--pg1-path={self.pgdata}", f"--set={latest.ref}", "--type=immediate",
            "--target-action=promote", "--archive-mode=off", f"--tablespace-map-all={tablespaces}"),
            "pgbackrest restore")
        if result.returncode != 0:
            raise RestoreFailed(first_error(result.stderr + result.stdout) or f"pgbackrest exited {result.returncode}")

    def _restore_base_backup(self, latest: BackupFile) -> None:
        source = Path(latest.ref)
        if (source / "pg_tblspc").is_dir() and any((source / "pg_tblspc").iterdir()):
            raise RestoreFailed(f"{latest.name} has tablespaces: restore it with its tablespace mapping by hand")
        shutil.copytree(source, self.pgdata, symlinks=True, dirs_exist_ok=True)
        (self.pgdata / "backup_manifest").unlink(missing_ok=True)
        os.chmod(self.pgdata, 0o700)
        give_to_unprivileged(self.pgdata)

    def _start(self) -> None:
        self.port = free_port()
        if not (self.pgdata / "postgresql.conf").exists():  # Debian keeps it in /etc: the defaults do
            (self.pgdata / "postgresql.conf").write_text("")
            give_to_unprivileged(self.pgdata / "postgresql.conf")
        options = [f"-c port={self.port}", "-c listen_addresses=127.0.0.1",
                   f"-c unix_socket_directories={self.socket_dir}", "-c archive_mode=off",
                   f"-c hba_file={self.data_dir / 'pg_hba.conf'}", "-c ssl=off", "-c logging_collector=off"]
        result = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-w",
                            "-t", str(int(self.timeout_s)), "-o", " ".join(options), "start"], "pg_ctl start")
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RestoreFailed(_server_error(log) or first_error(result.stderr + result.stdout)
                                or f"pg_ctl start exited {result.returncode}")
        dsn = f"postgresql://{self.user}@/{self.database}?host={self.socket_dir}&port={self.port}"
        self.scratch = PostgresScratch(dsn, None, self.timeout_s)
        deadline = time.monotonic() + self.timeout_s
        while self.scratch.query("SELECT pg_is_in_recovery()")[0][0]:  # --type=immediate promotes at consistency
            if time.monotonic() > deadline:
                raise RestoreFailed(f"recovery did not end within {self.timeout_s:g} s")
            time.sleep(0.1)

    def restore(self, latest: BackupFile) -> PostgresScratch:
        """Restore ``latest`` and start it; RestoreFailed with the tool's first error line."""
        self.restore_files(latest)
        self._start()
        return self.scratch

    def restore_files(self, latest: BackupFile) -> Path:
        """Restore ``latest`` into ``<data_dir>/pgdata`` without starting it (a DR drill starts it as its system)."""
        self._prepare()
        if self.backup.format == "pgbackrest":
            self._restore_pgbackrest(latest)
        else:
            self._restore_base_backup(latest)
        return self.pgdata

    # --- clean up ------------------------------------------------------------------------------
    def _stop_server(self, pid: int) -> bool:
        """pg_ctl stop immediate, then SIGKILL; True when the server ``pid`` is gone.

        Immediate, not fast: the copy is removed next, so a shutdown checkpoint would only write (and fsync)
        what is about to be deleted; at 300 MB that was about 0.4 s of the drill."""
        if alive(pid):
            try:
                run_unprivileged([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "-w",
                                  "-t", "30", "stop"], timeout_s=35)
            except subprocess.TimeoutExpired:
                pass
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)  # its backends exit when they see the postmaster gone
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        return not alive(pid)

    def _stop(self) -> bool:
        """Stop the server running from pgdata (postmaster.pid, verified: never a pid reused by another program)."""
        if self.scratch is not None:
            self.scratch.close()
        pid = server_from(self.pgdata)
        if pid is None or self._stop_server(pid):
            return True
        self.cleanup_left.append(f"server pid {pid} running from {self.pgdata}: did not stop")
        return False

    def clean_up(self) -> bool:
        """Stop the server and remove data_dir (the marker last); True only when no process holds it and it is
        gone. Nothing is removed while a process still holds it: ``cleanup_left`` says what is left."""
        try:
            stopped = self._stop()
        except Exception as error:  # noqa: BLE001 - the record says cleanup was not confirmed
            self.cleanup_left.append(f"server in {self.pgdata}: stopping it failed: {first_line(error)}")
            stopped = False
        if not self._unheld() or not stopped:
            return False
        if not self.data_dir.exists():
            return True
        for path in self.data_dir.iterdir():
            if path.name != MARKER:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        remaining = sorted(p.name for p in self.data_dir.iterdir() if p.name != MARKER)
        if remaining:  # the marker stays: the next drill may empty it
            self.cleanup_left.append(f"{self.data_dir}: could not remove {', '.join(remaining)}")
            return False
        (self.data_dir / MARKER).unlink(missing_ok=True)
        self.data_dir.rmdir()
        return not self.data_dir.exists() and self._unheld()

    def _unheld(self) -> bool:
        """True when no process's cwd, root or open file lies in data_dir (also once it is removed)."""
        held = holders(self.data_dir)
        if held:
            self.cleanup_left.append(f"{self.data_dir} is in use by {', '.join(held)}")
        return not held
