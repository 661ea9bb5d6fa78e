"""The DR drill engine: take the sandbox down as declared, recover it from the latest backup, prove it.

Every step is timed; the first failing step stops the drill and is recorded with its reason. Every
process it starts or replaces is recorded in the sandbox's state.json, so ``opsproof sandbox down``
still stops and removes everything whatever step failed. Refused on production tiers.

>>> DrDrill(scenario, environment).run().rto_achieved_s
7.4
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from opsproof.errors import ProbeError, first_line
from opsproof.record import DrillRecord, Measurement, Step
from opsproof.record.drill import tail
from opsproof.record.drill import utc_now as _now


class StepFailed(Exception):
    """A step could not do its job; the message is what the drill record says (``output``: what a command printed)."""

    def __init__(self, message: str, output: str | None = None):
        super().__init__(message)
        self.output = output


class DrDrill:
    def __init__(self, scenario, environment):
        if environment.tier == "production":
            raise ProbeError(f"DR drill refused: environment {environment.name} is tier production")
        self.scenario = scenario
        self.state_dir = Path(scenario.sandbox_dir)

    # --- the drill ---------------------------------------------------------------------------------

    def run(self) -> DrillRecord:
        """Run the scenario end to end; returns the drill record (also when a step failed)."""
        from filelock import FileLock

        if not self.state_dir.is_dir():
            raise ProbeError(f"no sandbox at {self.state_dir}: run `opsproof sandbox up`", unreachable=True)
        with FileLock(str(self.state_dir / "dr.lock"), timeout=self.scenario.rto_s * 2):  # one drill at a time
            return self._run()

    def _run(self) -> DrillRecord:
        from opsproof import sandbox

        self.box = sandbox.load(self.state_dir)
        if self.box is None or "postgres" not in self.box.processes:
            raise ProbeError(f"no sandbox at {self.state_dir}: run `opsproof sandbox up`", unreachable=True)
        s = self.scenario
        record = DrillRecord(kind="dr", scenario=s.name, started_at=_now(), rto_target_s=s.rto_s, rpo_target_s=s.rpo_s)
        self.replaced: list[tuple[str, dict]] = []  # (name, state record) of each process taken down
        try:
            for key, value in self._prepare().items():
                setattr(record, key, value)
        except StepFailed as error:
            return self._finish(record, "prepare", str(error))
        outage = time.monotonic()
        record.outage_started_at = _now()
        for step in [*s.steps, *(f"verify:{v}" for v in s.verify)]:
            started, entry = time.monotonic(), Step(name=step, started_at=_now())
            verifies = step.removeprefix("verify:") if step.startswith("verify:") else None
            try:
                entry.detail = self._verify(verifies) if verifies else getattr(self, step)()
            except StepFailed as failure:
                entry.error, entry.output_tail = str(failure), tail(failure.output)
            except Exception as failure:  # noqa: BLE001 - any crash is this step failing, not the drill crashing
                entry.error = f"{type(failure).__name__}: {first_line(failure)}"
            entry.outcome = "failed" if entry.error else "passed"
            entry.finished_at, entry.duration_s = _now(), round(time.monotonic() - started, 3)
            if verifies:  # measured as a check compares: the step's error, or "ok"
                detail = {"detail": entry.detail} if entry.detail else {}
                record.verifications.append(Measurement.compared(verifies, entry.error or "ok", "==", "ok", **detail))
            record.steps.append(entry)
            if entry.error:
                return self._finish(record, step, entry.error)
        record.rto_achieved_s = round(time.monotonic() - outage, 3)
        record.target = getattr(self, "target", "")
        try:
            after = self._newest_data()
            record.newest_data_after = after.isoformat() if after else None
            before = datetime.fromisoformat(record.newest_data_before) if record.newest_data_before else None
            record.rpo_achieved_s = round(max(0.0, (before - after).total_seconds()), 3) if before and after else None
        except StepFailed as error:
            return self._finish(record, "measure_rpo", str(error))
        return self._finish(record, None, None)

    def _finish(self, record: DrillRecord, failed_step: str | None, error: str | None) -> DrillRecord:
        from opsproof.sandbox.processes import running

        record.failed_step, record.error, record.finished_at = failed_step, error, _now()
        record.target = record.target or getattr(self, "target", "")
        # cleanup: every process the drill took down or replaced is gone (its files go at sandbox down)
        record.cleanup_confirmed = not any(running(name, process) for name, process in self.replaced)
        within = (record.rto_achieved_s is not None and record.rto_achieved_s <= record.rto_target_s
                  and record.rpo_achieved_s is not None and record.rpo_achieved_s <= record.rpo_target_s)
        record.outcome = "passed" if failed_step is None and within and record.cleanup_confirmed else "failed"
        return record

    def _prepare(self) -> dict:
        """Before the outage: the latest backup (or one taken now), the newest data, what tables hold."""
        backup = self._latest_backup()
        self.backup = backup
        found = {"backup_id": backup.name,
                 "backup_time": datetime.fromtimestamp(backup.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
                 "backup_set": str(backup.parent)}
        newest = self._newest_data()
        self.tables_before = self._table_counts()
        return {**found, "newest_data_before": newest.isoformat() if newest else None}

    def _latest_backup(self) -> Path:
        directory = self.scenario.backup_dir or self.box.variables.get("SANDBOX_BACKUP_DIR")
        if directory:
            dumps = sorted(Path(directory).glob("*.dump"), key=lambda p: p.stat().st_mtime)
            if not dumps:
                raise StepFailed(f"no *.dump backup in {directory}")
            return dumps[-1]
        own = self.state_dir / "dr-backups" / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}.dump"
        own.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["pg_dump", "-Fc", "-f", str(own), *self._connect_args()], env=self._pg_env(),
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise StepFailed(f"pg_dump failed: {first_line(Exception(result.stderr))}", output=result.stderr)
        return own

    # --- take down ---------------------------------------------------------------------------------

    def stop_api(self) -> str:
        return self._stop("api")

    def stop_database(self) -> str:
        return self._stop("postgres")

    def lose_cache(self) -> str:
        stopped = self._stop("redis")
        (self.state_dir / "redis" / "dump.rdb").unlink(missing_ok=True)
        return f"{stopped}; dump.rdb removed"

    def _stop(self, name: str) -> str:
        from opsproof.sandbox import LeftAlone, stop_process

        process = self.box.processes.get(name)
        if process is None:
            raise StepFailed(f"the sandbox has no {name} process")
        try:
            stop_process(name, process)
        except LeftAlone as error:
            raise StepFailed(f"left alone {error}") from None
        self.replaced.append((name, process))
        return f"{name} (pid {process['pid']}) stopped"

    # --- recover -----------------------------------------------------------------------------------

    def restore_database(self) -> str:
        """A fresh cluster on the database's port, the roles, then pg_restore of the latest backup."""
        from opsproof.sandbox import postgres
        from opsproof.sandbox.processes import running

        old = self.box.processes["postgres"]
        if running("postgres", old):
            raise StepFailed("the database is still running: stop_database must come before restore_database")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        base = self.state_dir / f"dr-{stamp}"
        base.mkdir()
        password = self.box.variables["SANDBOX_PG_ADMIN_PASSWORD"]
        data_dir = postgres.create_cluster(base, old["port"], password)
        try:
            pid = postgres.start(data_dir, old["port"])
        except BaseException:
            postgres.remove(data_dir, base)
            raise
        # the stopped cluster's files stay (evidence) and go at sandbox down, with the new cluster's
        cleanup = [str(data_dir.parent), *old.get("cleanup", [])]
        self.box.add_process("postgres", pid, old["port"], data_dir=str(data_dir), cleanup=cleanup)
        self.target = f"fresh PostgreSQL cluster {data_dir} on 127.0.0.1:{old['port']}"
        self._create_roles()
        result = subprocess.run(["pg_restore", "--exit-on-error", "-d", postgres.DATABASE, *self._connect_args(False),
                                 str(self.backup)], env=self._pg_env(), capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise StepFailed(f"pg_restore of {self.backup.name} failed: {first_line(Exception(result.stderr))}",
                             output=result.stderr)
        # a dump taken with --no-owner restores as the admin's: the application must still reach its data
        self._query(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {postgres.APP_USER}; "
                    f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {postgres.APP_USER}", fetch=False)
        return f"{self.backup.name} restored into {data_dir}"

    def _create_roles(self) -> None:
        import psycopg
        from psycopg import sql

        from opsproof.sandbox import postgres

        app_password = self.box.variables["SANDBOX_PG_PASSWORD"]
        with psycopg.connect(dbname="postgres", autocommit=True, **self._admin()) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(postgres.APP_USER), app_password))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(postgres.DATABASE), sql.Identifier(postgres.APP_USER)))
            conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(postgres.APP_USER)))

    def start_cache(self) -> str:
        from opsproof.sandbox import redis

        port = self.box.port("redis")
        pid = redis.start(self.state_dir, port, self.box.variables["SANDBOX_REDIS_PASSWORD"])
        self.box.add_process("redis", pid, port)
        return f"redis (pid {pid}) on 127.0.0.1:{port}, empty"

    def start_api(self) -> str:
        from opsproof.sandbox.processes import SandboxError, wait_for_port

        port = self.box.port("api")
        names = ("SANDBOX_PG_DSN", "SANDBOX_PG_PASSWORD", "SANDBOX_REDIS_URL", "SANDBOX_REDIS_PASSWORD")
        env = {**os.environ, **{k: self.box.variables[k] for k in names}}
        with open(self.state_dir / "api.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "opsproof.sandbox.api", "--port", str(port)], env=env,
                                       stdout=log, stderr=log, start_new_session=True, cwd=self.state_dir)
        self.box.add_process("api", process.pid, port)
        try:
            wait_for_port(port, 20, "the demo API", process)
        except SandboxError as error:
            raise StepFailed(str(error)) from None
        return f"api (pid {process.pid}) on 127.0.0.1:{port}"

    # --- verify ------------------------------------------------------------------------------------

    def _verify(self, name: str) -> str:
        return {"api_health": self._api_health, "api_data": self._api_data, "tables_restored": self._tables_restored,
                "invariants": self._invariants}[name]()

    def _api_health(self) -> str:
        import httpx

        url = f"{self.box.variables['SANDBOX_API_URL']}/health"
        deadline, last = time.monotonic() + self.scenario.healthy_within_s, "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(url, timeout=2)
                if response.status_code == 200 and response.json().get("status") == "healthy":
                    return f"/health 200 healthy after {self.scenario.healthy_within_s - (deadline - time.monotonic()):.1f} s"
                last = f"{response.status_code} {response.text.strip()}"
            except (httpx.HTTPError, ValueError) as error:
                last = first_line(error)
            time.sleep(0.2)
        raise StepFailed(f"the API did not become healthy within {self.scenario.healthy_within_s:g} s: "
                         f"/health answered {last}")

    def _api_data(self) -> str:
        import httpx

        try:
            response = httpx.get(f"{self.box.variables['SANDBOX_API_URL']}/v1/wallets", timeout=5)
            wallets = response.json().get("wallets") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as error:
            raise StepFailed(f"/v1/wallets: {first_line(error)}") from None
        if not wallets:
            raise StepFailed(f"/v1/wallets answered {response.status_code} without wallets")
        return f"/v1/wallets 200 with {len(wallets)} wallets"

    def _tables_restored(self) -> str:
        after = self._table_counts()
        lost = [f"{t} ({n} rows before, {after.get(t, 'missing')} after)" for t, n in self.tables_before.items()
                if after.get(t) is None or (n and not after[t])]
        if lost:
            raise StepFailed(f"tables not restored: {', '.join(lost)}")
        return ", ".join(f"{t} {after[t]}/{n}" for t, n in self.tables_before.items())

    def _invariants(self) -> str:
        results = []
        for name, invariant in self.scenario.invariants.items():
            value = float(self._query(invariant.sql)[0][0])
            if (invariant.max is not None and value > invariant.max) or (invariant.min is not None and value < invariant.min):
                raise StepFailed(f"invariant {name} ({value:g}) outside [{invariant.min}, {invariant.max}]")
            results.append(f"{name} {value:g}")
        return ", ".join(results) or "no invariants declared"

    # --- database access ---------------------------------------------------------------------------

    def _admin(self) -> dict:
        from opsproof.sandbox import postgres

        return dict(host="127.0.0.1", port=self.box.port("postgres"), user=postgres.ADMIN_USER,
                    password=self.box.variables["SANDBOX_PG_ADMIN_PASSWORD"], connect_timeout=5)

    def _connect_args(self, with_db: bool = True) -> list[str]:
        from opsproof.sandbox import postgres

        admin = self._admin()
        args = ["-h", admin["host"], "-p", str(admin["port"]), "-U", admin["user"]]
        return [*args, "-d", postgres.DATABASE] if with_db else args

    def _pg_env(self) -> dict:
        return {**os.environ, "PGPASSWORD": self.box.variables["SANDBOX_PG_ADMIN_PASSWORD"], "PGCONNECT_TIMEOUT": "5"}

    def _query(self, text: str, fetch: bool = True) -> list[tuple]:
        import psycopg

        from opsproof.sandbox import postgres

        try:
            with psycopg.connect(dbname=postgres.DATABASE, **self._admin()) as conn:
                conn.execute("SET statement_timeout = 10000")
                cursor = conn.execute(text)
                return cursor.fetchall() if fetch else []
        except psycopg.Error as error:
            raise StepFailed(f"query failed: {first_line(error)}") from None

    def _newest_data(self):
        return self._query(self.scenario.freshness_sql)[0][0]

    def _table_counts(self) -> dict[str, int]:
        rows = self._query("SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname")
        counts = {}
        for (table,) in rows:
            counts[table] = self._query(f'SELECT count(*) FROM public."{table}"')[0][0]
        return counts

