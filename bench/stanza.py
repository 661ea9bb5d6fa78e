"""A pgBackRest stanza of real-sized data for bench/restore.py ``--pgbackrest``.

A cluster of its own (initdb as the server user, archive_command = pgbackrest archive-push), the ledger
table of bench/ledger.py built in it, one full backup (uncompressed, as tests/pgbackrest_cluster.py
takes it). ``bare_restore`` is what an operator types: ``pgbackrest restore`` of that backup
(``--type=immediate --target-action=promote --archive-mode=off``, as the drill restores it) and
``pg_ctl start -w``; stop and removal are not timed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import ledger
from opsproof.processes import free_port, give_to_unprivileged, run_unprivileged
from opsproof.sandbox import postgres as sandbox_pg

PASSWORD = "bench-stanza-admin-password"
STANZA = "bench"
SET = "ledger-stanza"


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Stanza:
    def __init__(self, root: Path, data_dir: Path, port: int, config: Path):
        self.root, self.data_dir, self.port, self.config = root, data_dir, port, config

    def pgbackrest(self, *command: str) -> str:
        result = run_unprivileged(["pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *command],
                                  timeout_s=1800)
        if result.returncode != 0:
            raise RuntimeError(f"pgbackrest {command[0]} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def backup_set(self, data_dir: Path, rows: int) -> str:
        """The set's YAML (indented for ``backups:``) and the source target's (for ``postgres:``)."""
        return f"""  {SET}:
    of: postgres.stanza
    format: pgbackrest
    rpo: 24h
    rto: 30m
    pgbackrest: {{stanza: {STANZA}, config: {self.config}}}
    tables:
      {ledger.TABLE}: {{min_rows: {rows}, timestamp: created_at}}
    restore_into:
      data_dir: {data_dir}
      scratch: true
"""

    def source(self) -> str:
        return f"""  stanza:
    dsn: postgresql://{sandbox_pg.ADMIN_USER}@127.0.0.1:{self.port}/{ledger.DATABASE}
    password: {PASSWORD}
    connect_timeout_s: 5
"""

    def bare_restore(self, scratch: Path, phases: dict) -> float:
        """pgbackrest restore + pg_ctl start -w into ``scratch`` (wall seconds); then stop and remove, not timed."""
        pgdata, socket_dir = scratch / "pgdata", scratch / "socket"
        shutil.rmtree(scratch, ignore_errors=True)
        socket_dir.mkdir(parents=True)
        os.chmod(scratch, 0o755)
        pgdata.mkdir(mode=0o700)
        give_to_unprivileged(socket_dir)
        give_to_unprivileged(pgdata)
        started = time.perf_counter()
        self.pgbackrest("restore", f"--pg1-path={pgdata}", "--type=immediate", "--target-action=promote",
                        "--archive-mode=off")
        restored = time.perf_counter()
        options = (f"-c port={free_port()} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} "
                   "-c archive_mode=off")
        pg_ctl = str(sandbox_pg.bindir() / "pg_ctl")
        result = run_unprivileged([pg_ctl, "-D", str(pgdata), "-l", str(socket_dir / "log"), "-w", "-t", "300",
                                   "-o", options, "start"], timeout_s=310)
        elapsed = time.perf_counter() - started
        phases.update(restore=restored - started, start=elapsed - (restored - started))
        stopping, stopping_cpu = time.perf_counter(), _cpu()
        run_unprivileged([pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop"], timeout_s=60)
        shutil.rmtree(scratch, ignore_errors=True)
        phases["stop, remove (not timed)"] = time.perf_counter() - stopping
        phases["_cpu_not_timed"] = _cpu() - stopping_cpu
        if result.returncode != 0:
            raise RuntimeError(f"bare pg_ctl start failed: {result.stdout}{result.stderr}")
        return elapsed


@contextmanager
def stanza(rows: int):
    """The cluster, its ledger of ``rows`` rows and one full backup; stopped and removed afterwards."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="opsproof-bench-stanza-"))
    os.chmod(root, 0o755)
    data_dir = sandbox_pg.create_cluster(root, port, PASSWORD)
    try:
        for name in ("repo", "log", "lock", "socket"):
            (root / name).mkdir()
            give_to_unprivileged(root / name)
        config = root / "pgbackrest.conf"
        config.write_text(
            f"[global]\nrepo1-path={root}/repo\nlog-path={root}/log\nlock-path={root}/lock\nlog-level-file=off\n"
            f"start-fast=y\ncompress-type=none\n\n[{STANZA}]\npg1-path={data_dir}\npg1-port={port}\n"
            f"pg1-socket-path={root}/socket\npg1-user={sandbox_pg.ADMIN_USER}\n")
        give_to_unprivileged(config)
        hba = data_dir / "pg_hba.conf"
        hba.write_text("local all all trust\n" + hba.read_text())  # pgBackRest talks over the socket
        with open(data_dir / "postgresql.auto.conf", "a") as auto:
            auto.write(f"archive_mode = on\narchive_command = 'pgbackrest --config={config} --stanza={STANZA} "
                       f"archive-push %p'\n")
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}/socket "
                   f"-c fsync=off -c wal_level=replica")
        started = run_unprivileged([str(sandbox_pg.bindir() / "pg_ctl"), "-D", str(data_dir), "-l",
                                    str(data_dir / "server.log"), "-w", "-t", "60", "-o", options, "start"],
                                   timeout_s=70)
        if started.returncode != 0:
            raise RuntimeError(f"stanza cluster did not start: {started.stderr}")
        box = type("Box", (), {"pg_port": port, "pg_admin_password": PASSWORD})()
        ledger.build_in(box, rows)
        found = Stanza(root, data_dir, port, config)
        found.pgbackrest("stanza-create")
        found.pgbackrest("backup", "--type=full")
        yield found
    finally:
        sandbox_pg.stop(data_dir)
        sandbox_pg.remove(data_dir, root)
        shutil.rmtree(root, ignore_errors=True)
