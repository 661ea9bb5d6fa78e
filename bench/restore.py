"""Benchmark: restoring the sandbox database by the opsproof drill vs the bare commands.

Starts its own sandbox and, ``--runs`` times each (after a warm-up), times: the bare command
(``pg_restore --exit-on-error --no-owner -d`` into a database created just before, not timed);
the drill in-process (create, fetch, restore, verify tables/row counts/invariants, drop, confirm);
and the whole ``opsproof run --suite backup -k restores`` process. For the physical drill: the bare
copy of the latest base backup and ``pg_ctl start -w`` (stop and removal not timed) vs the drill
of ``bankchain-base`` (restore, start, recovery ended, verify, stop, remove, confirm).
Prints medians and the overhead ratios. Usage: ``.venv/bin/python bench/restore.py [--runs 7]``.

On real-sized data, ``--rows 1000000``: the benchmark builds a table of that many rows in a scratch
database of its sandbox and dumps it (bench/ledger.py: about 100 MB with pg_dump -Fc), then times,
interleaved (bare, drill, process, bare, ...) after a warm-up each: the bare commands (``CREATE
DATABASE``, ``pg_restore --exit-on-error --no-owner``, the drill's own three queries in one ``psql``,
``DROP DATABASE``, each phase timed), the drill in-process and ``opsproof run``. Then it takes a base
backup holding that database and times the bare copy + ``pg_ctl start -w`` against the physical drill,
interleaved too; with ``--pgbackrest`` also a pgBackRest stanza of its own cluster holding that table
(bench/stanza.py): ``pgbackrest restore`` + ``pg_ctl start -w`` vs the drill. Medians of wall and CPU
time (user + system, children included; the server's own is on neither side), each side's min-max and
phases. ``--sandbox DIR`` takes a running sandbox.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsproof import sandbox as sandbox_module
from opsproof.processes import free_port, give_to_unprivileged, run_unprivileged
from opsproof.sandbox import postgres as sandbox_pg

ROOT = Path(__file__).resolve().parent.parent
SET = "bankchain-custom"
PHYSICAL_SET = "bankchain-base"


def bare_restore(box, dump: Path) -> float:
    import psycopg

    admin = dict(host="127.0.0.1", port=box.pg_port, user=sandbox_pg.ADMIN_USER, password=box.pg_admin_password,
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_bare WITH (FORCE)")
        conn.execute("CREATE DATABASE bench_bare")
    env = {**os.environ, "PGPASSWORD": box.pg_admin_password}
    command = ["pg_restore", "--exit-on-error", "--no-owner", "-h", "127.0.0.1", "-p", str(box.pg_port),
               "-U", sandbox_pg.ADMIN_USER, "-d", "bench_bare", str(dump)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    with psycopg.connect(**admin) as conn:
        conn.execute("DROP DATABASE bench_bare WITH (FORCE)")
    return elapsed


def bare_physical_restore(base_backup: Path, scratch: Path, phases: dict | None = None) -> float:
    """What an operator types: copy the base backup, start it, wait until it accepts connections.

    Stop and removal are not timed (``phases``, when given, gets copy, start and their wall time apart)."""
    pgdata, socket_dir = scratch / "pgdata", scratch / "socket"
    shutil.rmtree(scratch, ignore_errors=True)
    socket_dir.mkdir(parents=True)
    os.chmod(scratch, 0o755)
    started = time.perf_counter()
    shutil.copytree(base_backup, pgdata, symlinks=True)
    os.chmod(pgdata, 0o700)
    give_to_unprivileged(socket_dir)
    give_to_unprivileged(pgdata)
    copied = time.perf_counter()
    options = f"-c port={free_port()} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} " \
              "-c archive_mode=off"
    pg_ctl = str(sandbox_pg.bindir() / "pg_ctl")
    result = run_unprivileged([pg_ctl, "-D", str(pgdata), "-l", str(socket_dir / "log"), "-w", "-t", "120",
                               "-o", options, "start"], timeout_s=130)
    elapsed = time.perf_counter() - started
    if phases is not None:
        phases.update(copy=copied - started, start=elapsed - (copied - started))
    stopping, stopping_cpu = time.perf_counter(), cpu_now()
    run_unprivileged([pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop"], timeout_s=60)
    shutil.rmtree(scratch, ignore_errors=True)
    if phases is not None:
        phases["stop, remove (not timed)"] = time.perf_counter() - stopping
        phases["_cpu_not_timed"] = cpu_now() - stopping_cpu
    if result.returncode != 0:
        sys.exit(f"bare pg_ctl start failed: {result.stdout}{result.stderr}")
    return elapsed


def drill_in_process(environment, name: str = SET) -> float:
    from opsproof.backups import BackupProbe

    started = time.perf_counter()
    record = BackupProbe(environment.backups[name], environment).drill()
    elapsed = time.perf_counter() - started
    if record.outcome != "passed" or not record.cleanup_confirmed:
        sys.exit(f"the drill did not pass: {record}")
    return elapsed


def drill_cli(env_file: Path, reports: Path) -> float:
    command = [str(ROOT / ".venv" / "bin" / "opsproof"), "run", "--env", str(env_file), "--suite", "backup",
               "--reports-dir", str(reports), "-k", f"restores and {SET}", "--allow-destructive", "-q"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"opsproof run failed (exit {result.returncode}):\n{result.stdout[-2000:]}")
    return elapsed


def median_of(runs: int, measure) -> float:
    measure()  # warm-up: page cache, first connections
    return statistics.median(measure() for _ in range(runs))


def cpu_now() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed(measure) -> tuple[float, float, object]:
    """Wall and CPU seconds (this process and its reaped children) of ``measure()``, and what it returned."""
    wall, cpu = time.perf_counter(), cpu_now()
    result = measure()
    return time.perf_counter() - wall, cpu_now() - cpu, result


def bare_ledger(box, dump: Path) -> dict[str, float]:
    """What an operator types: a fresh database, pg_restore, the drill's queries, drop; each phase's wall time."""
    import ledger

    env, where = ledger.client_env(box), ["-h", "127.0.0.1", "-p", str(box.pg_port), "-U", sandbox_pg.ADMIN_USER]
    phases, started = {}, time.perf_counter()
    for phase, command in (
            ("create", ["psql", "-X", "-q", *where, "-d", "postgres", "-c", f"CREATE DATABASE {ledger.BARE}"]),
            ("restore", ["pg_restore", "--exit-on-error", "--no-owner", *where, "-d", ledger.BARE, str(dump)]),
            ("counts", ["psql", "-X", "-At", *where, "-d", ledger.BARE,
                        *[arg for query in ledger.QUERIES for arg in ("-c", query)]]),
            ("drop", ["psql", "-X", "-q", *where, "-d", "postgres", "-c",
                      f"DROP DATABASE {ledger.BARE} WITH (FORCE)"])):
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
        phases[phase], started = time.perf_counter() - started, time.perf_counter()
    return phases


def drill_steps(environment, name: str) -> dict[str, float]:
    from opsproof.backups import BackupProbe

    record = BackupProbe(environment.backups[name], environment).drill()
    if record.outcome != "passed" or not record.cleanup_confirmed:
        sys.exit(f"the drill did not pass: {record}")
    return {step.name: step.duration_s or 0.0 for step in record.steps}


def summary(walls: list[float], cpus: list[float], phases: list[dict]) -> str:
    """``wall M ms (min-max)  cpu M ms  (phase medians)`` of one side's runs."""
    median = statistics.median
    parts = ", ".join(f"{k} {median(p[k] for p in phases) * 1000:.0f}"
                      for k in (phases[0] or {}) if not k.startswith("_"))
    return (f"wall {median(walls) * 1000:7.0f} ms ({min(walls) * 1000:.0f}-{max(walls) * 1000:.0f})  "
            f"cpu {median(cpus) * 1000:6.0f} ms{'  (' + parts + ' ms)' if parts else ''}")


def real_sized(box, state_dir: Path, rows: int, runs: int, with_pgbackrest: bool = False) -> None:
    """The logical and physical drills on a ``rows``-row database built here (see the module docstring)."""
    import ledger
    from timing import run_once, users_env
    from opsproof.environment import load_environment
    from opsproof.sandbox.backups import base_backup

    load = os.getloadavg()
    started = time.perf_counter()
    dump = ledger.build(box, rows, state_dir / "ledger")
    print(f"built {rows} rows and dumped them in {time.perf_counter() - started:.1f} s: "
          f"{dump.stat().st_size / 1e6:.1f} MB custom-format dump")
    env_file = state_dir / "bench.yaml"
    env_file.write_text((ROOT / "environments" / "local.yaml").read_text()
                        .replace("name: local", "name: bench").replace("../.opsproof/sandbox/vars.env", "vars.env")
                        .replace("  bankchain-custom:\n",
                                 ledger.backup_set(dump.parent, rows) + "  bankchain-custom:\n", 1))
    environment = load_environment(env_file).environment
    cli = [str(ROOT / ".venv" / "bin" / "opsproof"), "run", "--env", str(env_file), "--suite", "backup",
           "--reports-dir", str(state_dir / "reports"), "-k", f"restores and {ledger.SET}", "--allow-destructive", "-q"]
    sides = {"bare": lambda: bare_ledger(box, dump), "drill": lambda: drill_steps(environment, ledger.SET),
             "cli": lambda: run_once(cli, users_env(), ROOT, timeout_s=1800)}
    walls, cpus, phases, rss = {k: [] for k in sides}, {k: [] for k in sides}, {k: [] for k in sides}, []
    for round_ in range(runs + 1):  # round 0 is the warm-up of each side
        for name, measure in sides.items():
            wall, cpu, result = timed(measure)
            if name == "cli":
                wall, code, output, rss_kb, cpu = result
                if code != 0:
                    sys.exit(f"opsproof run failed (exit {code}):\n{output[-2000:]}")
                result = {}
                rss.append(rss_kb)
            if round_:
                walls[name].append(wall)
                cpus[name].append(cpu)
                phases[name].append(result)
    median = statistics.median
    print(f"logical, median of {runs} interleaved runs, load average at start {load[0]:.1f}, "
          f"at end {os.getloadavg()[0]:.1f}")
    for name in sides:
        print(f"  {name:6} {summary(walls[name], cpus[name], phases[name])}")
    bare_core = [p["restore"] + p["counts"] for p in phases["bare"]]
    print(f"  drill / bare (create..drop): wall {median(walls['drill']) / median(walls['bare']):.3f}x, "
          f"cpu {median(cpus['drill']) / median(cpus['bare']):.2f}x; drill / bare pg_restore + queries only: "
          f"{median(walls['drill']) / median(bare_core):.3f}x; opsproof run / bare: "
          f"{median(walls['cli']) / median(walls['bare']):.3f}x wall, "
          f"{median(cpus['cli']) / median(cpus['bare']):.2f}x cpu")
    print(f"  peak RSS: opsproof run {max(rss) / 1024:.0f} MB; this process (drill in-process) "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    backups = Path(box.variables["SANDBOX_BACKUP_DIR"])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = base_backup(box, backups, stamp)  # the latest: the drill restores it
    try:
        size = sum(f.stat().st_size for f in base.rglob("*") if f.is_file())
        scratch = Path(tempfile.mkdtemp(prefix="opsproof-bench-physical-"))
        os.chmod(scratch, 0o755)  # the server user traverses it

        def bare_physical() -> dict:
            phases: dict = {}
            bare_physical_restore(base, scratch / "bare", phases)
            return phases

        load = os.getloadavg()
        physical = interleave({"bare copy + pg_ctl start": bare_physical,
                               "physical drill": lambda: drill_steps(environment, PHYSICAL_SET)}, runs)
        shutil.rmtree(scratch, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        (backups / f"{base.name}.counts.json").unlink(missing_ok=True)
    print(f"physical: base backup of {size / 1e6:.0f} MB, median of {runs} interleaved runs, load average at start "
          f"{load[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    report(physical)
    if with_pgbackrest:
        pgbackrest_drill(env_file, rows, runs)


def interleave(sides: dict, runs: int) -> dict:
    """Each side's (walls, cpus, phases) over ``runs`` interleaved runs after a warm-up round; a side's
    ``stop, remove (not timed)`` and ``_cpu_not_timed`` phases are taken out of its wall and CPU time."""
    found = {name: ([], [], []) for name in sides}
    for round_ in range(runs + 1):
        for name, measure in sides.items():
            wall, cpu, phases = timed(measure)
            wall -= phases.get("stop, remove (not timed)", 0.0)
            cpu -= phases.get("_cpu_not_timed", 0.0)
            if round_:
                for kept, value in zip(found[name], (wall, cpu, phases)):
                    kept.append(value)
    return found


def report(found: dict) -> None:
    for name, (walls, cpus, phases) in found.items():
        print(f"  {name:26} {summary(walls, cpus, phases)}")
    (bare_walls, bare_cpus, _), (walls, cpus, _) = found.values()
    median = statistics.median
    print(f"  drill / bare: wall {median(walls) / median(bare_walls):.3f}x, "
          f"cpu {median(cpus) / median(bare_cpus):.2f}x")


def pgbackrest_drill(env_file: Path, rows: int, runs: int) -> None:
    """The physical drill of a pgBackRest stanza holding the ledger vs ``pgbackrest restore`` + ``pg_ctl start``."""
    import stanza as stanza_module
    from opsproof.environment import load_environment

    scratch = Path(tempfile.mkdtemp(prefix="opsproof-bench-stanza-restore-"))
    os.chmod(scratch, 0o755)  # the server user traverses it
    try:
        with stanza_module.stanza(rows) as found:
            stanza_file = env_file.parent / "bench-stanza" / "bench.yaml"
            stanza_file.parent.mkdir(exist_ok=True)
            (stanza_file.parent / "vars.env").write_text((env_file.parent / "vars.env").read_text())
            stanza_file.write_text(env_file.read_text().replace("\npostgres:\n", "\npostgres:\n" + found.source(), 1)
                                   .replace("\nbackups:\n",
                                            "\nbackups:\n" + found.backup_set(scratch / "drill", rows), 1))
            environment = load_environment(stanza_file).environment
            size = sum(f.stat().st_size for f in (found.root / "repo").rglob("*") if f.is_file())

            def bare() -> dict:
                phases: dict = {}
                found.bare_restore(scratch / "bare", phases)
                return phases

            load = os.getloadavg()
            measured = interleave({"pgbackrest restore + start": bare,
                                   "pgBackRest drill": lambda: drill_steps(environment, stanza_module.SET)}, runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"pgBackRest: stanza repository of {size / 1e6:.0f} MB, median of {runs} interleaved runs, load average at "
          f"start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    report(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, help="build a table of this many rows (about 100 bytes each) and "
                                                 "time the drills on it")
    parser.add_argument("--pgbackrest", action="store_true", help="with --rows: also a pgBackRest stanza of "
                                                                      "that table, its drill vs restore + start")
    parser.add_argument("--sandbox", help="a running sandbox's state directory (left up)")
    args = parser.parse_args()
    if args.rows:
        import ledger
        from timing import sandbox

        with sandbox(args.sandbox, "opsproof-bench-restore-") as (box, state_dir):
            try:
                real_sized(box, Path(state_dir), args.rows, args.runs, args.pgbackrest)
            finally:
                ledger.drop(box)
                shutil.rmtree(Path(state_dir) / "ledger", ignore_errors=True)
        return
    from opsproof.environment import load_environment

    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-bench-restore-"))
    box = sandbox_module.up(state_dir)
    try:
        env_file = state_dir / "bench.yaml"
        env_file.write_text((ROOT / "environments" / "local.yaml").read_text()
                            .replace("name: local", "name: bench").replace("../.opsproof/sandbox/vars.env", "vars.env"))
        environment = load_environment(env_file).environment
        dump = sorted(Path(box.variables["SANDBOX_BACKUP_DIR"]).glob("*.dump"))[-1]
        size_bytes = dump.stat().st_size
        bare = median_of(args.runs, lambda: bare_restore(box, dump))
        drill = median_of(args.runs, lambda: drill_in_process(environment))
        cli = median_of(args.runs, lambda: drill_cli(env_file, state_dir / "reports"))
        base_backup = sorted(p for p in Path(box.variables["SANDBOX_BACKUP_DIR"]).glob("base-*") if p.is_dir())[-1]
        scratch = Path(tempfile.mkdtemp(prefix="opsproof-bench-physical-"))
        os.chmod(scratch, 0o755)  # the server user traverses it
        bare_physical = median_of(args.runs, lambda: bare_physical_restore(base_backup, scratch / "bare"))
        scratch.rmdir()
        physical = median_of(args.runs, lambda: drill_in_process(environment, PHYSICAL_SET))
    finally:
        sandbox_module.down(state_dir)
    print(f"sandbox database: {size_bytes} bytes custom-format dump; median of {args.runs} runs")
    print(f"bare pg_restore                      {bare * 1000:8.0f} ms")
    print(f"opsproof drill (create..verify..drop){drill * 1000:8.0f} ms   overhead ratio {drill / bare:.2f}x")
    print(f"opsproof run --suite backup (process){cli * 1000:8.0f} ms   overhead ratio {cli / bare:.2f}x")
    print(f"bare base backup copy + pg_ctl start {bare_physical * 1000:8.0f} ms")
    print(f"opsproof physical drill (..confirm)  {physical * 1000:8.0f} ms   overhead ratio "
          f"{physical / bare_physical:.2f}x")


if __name__ == "__main__":
    main()
