"""The ``opsproof`` command: run, validate, sandbox up|status|down, demo, history verify, prune, readiness.

Exit codes: 0 nothing gating failed; 1 a gating check failed or errored; 2 interrupted;
3 another run of the environment (and suite) holds the lock; 4 usage or environment-file error.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

from opsproof.errors import ConfigError, SandboxError
from opsproof.paths import project_root

EXIT_OK, EXIT_GATING, EXIT_INTERRUPTED, EXIT_USAGE = 0, 1, 2, 4
SUITES = ("smoke", "nightly", "backup", "dr")
# A run loads the installed pytest plugins it uses, not every one installed (testinfra, anyio, timeout,
# httpserver... arrive with dependencies): pytest-html writes report.html and needs pytest-metadata;
# html_fixtures gives custom checks the ``extras`` fixture. Others load when their options are given,
# by ``-p NAME``, or all of them as pytest would with OPSPROOF_PLUGIN_AUTOLOAD=1.
RUN_PLUGINS = ("metadata", "html", "html_fixtures")
PLUGINS_BY_OPTION = {"-n": "xdist", "--numprocesses": "xdist", "--dist": "xdist", "--maxprocesses": "xdist",
                     "--tx": "xdist", "--timeout": "timeout"}
AUTOLOAD_VARIABLE = "OPSPROOF_PLUGIN_AUTOLOAD"
HTML_NAME_WARNING = "Module already imported so cannot be rewritten; html"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2, which means "interrupted" here
        self.exit(EXIT_USAGE, f"opsproof: error: {message}\n")


def plugin_args(extra: list[str], workers: int | None = None) -> list[str]:
    """``--disable-plugin-autoload`` and a ``-p`` for each plugin the run uses (xdist only with -n).

    Loading every installed plugin cost about a sixth of a smoke run's start-up (the entry point scan
    alone reads every installed package's metadata).
    """
    if os.environ.get(AUTOLOAD_VARIABLE) == "1" or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []  # pytest's own way: every installed plugin, or exactly those the user named
    wanted = list(RUN_PLUGINS) + (["xdist"] if workers else [])
    for token in extra:
        for option, plugin in PLUGINS_BY_OPTION.items():
            if token == option or token.startswith(f"{option}=") or (option == "-n" and token[:2] == "-n"
                                                                     and token[2:].isalnum()):
                wanted.append(plugin)
    # "html" is also the standard library's module (imported by then), which pytest cannot mark for
    # assertion rewriting: it warns so; pytest-html has no asserts to rewrite
    command = ["--disable-plugin-autoload", "-W", f"ignore:{HTML_NAME_WARNING}:pytest.PytestAssertRewriteWarning"]
    for plugin in dict.fromkeys(wanted):
        command += ["-p", plugin]
    return command


def _pytest_args(args: argparse.Namespace, suite: str | None, extra: list[str] = ()) -> list[str]:
    root = project_root()
    command = ["-c", str(root / "pyproject.toml"), "--rootdir", str(root), str(root / "checks")]
    command += plugin_args(list(extra), args.workers)
    if args.env:
        command += ["--env", args.env]
    if suite:
        command += ["--suite", suite]
    if args.gate:
        command += ["--gate", args.gate]
    if args.fail_on_warn:
        command.append("--fail-on-warn")
    for expected in args.expect_version or ():
        command += ["--expect-version", expected]
    if args.reports_dir:
        command += ["--reports-dir", str(Path(args.reports_dir).resolve())]
    if args.workers:
        command += ["-n", str(args.workers), "--dist", "loadgroup"]  # a drill's checks share one worker
    if args.wait_lock:
        command += ["--wait-lock", args.wait_lock]
    return command


def _settled_heap():
    """A plugin for the run: its start-up (imports, configuration, collection) makes what lives to the end
    of the run, and its checks' clients arrive with theirs. The collector would walk all of it again and
    again (a smoke run spent a fifth of its time in gc): it waits until collection is done, then
    ``gc.freeze`` takes what exists out of its sight, again before the reports are written, so the run's
    collections (and pytest's two full ones as it ends) walk only what the checks and reports make."""
    import pytest

    class SettledHeap:
        @staticmethod
        def pytest_collection_finish(session) -> None:
            gc.freeze()
            gc.enable()

        @staticmethod
        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(session) -> None:
            gc.collect(1)  # the last checks' young garbage goes now; older is kept until the process ends
            gc.freeze()

    gc.disable()
    return SettledHeap()


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    # pydantic looks for plugins of its own in every installed package's metadata at its first model;
    # opsproof uses none (set the variable empty to let pydantic look)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import pytest

    from opsproof.terminal import ReaderMayQuit

    enabled, stdout = gc.isenabled(), sys.stdout
    sys.stdout = ReaderMayQuit(stdout)  # `opsproof run | head`: the reports are written all the same
    try:
        code = int(pytest.main(_pytest_args(args, args.suite, extra) + extra, plugins=[_settled_heap()]))
    finally:  # run in-process (tests): the caller's collector and output as they were, what the run left collectable
        sys.stdout = stdout
        gc.unfreeze()
        if enabled:
            gc.enable()
    if code == int(pytest.ExitCode.NO_TESTS_COLLECTED):
        print(f"opsproof: no checks selected (suite {args.suite or 'all'}, {' '.join(extra) or 'no filters'})",
              file=sys.stderr)
        return EXIT_USAGE
    return code


def cmd_validate(args: argparse.Namespace, extra: list[str]) -> int:
    """Every problem of each file at once (exit 4), then its warnings; ``--no-secrets``: unset ${VAR}s get
    placeholders, so CI checks the files' structure without production credentials."""
    from opsproof import waivers
    from opsproof.environment import KINDS, load_environment

    files = [Path(f) for f in args.files] or sorted(
        p for p in (project_root() / "environments").glob("*.y*ml") if ".waivers." not in p.name)
    worst = EXIT_OK
    for path in files:
        try:
            loaded = load_environment(path, placeholders=args.no_secrets)
            env = loaded.environment
            waivers.load(waivers.waivers_path(loaded.path, env.name, env.waivers_file))
        except ConfigError as error:
            print(f"opsproof: {error}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        for warning in loaded.warnings:
            print(f"warning: {warning.shown(str(path))}", file=sys.stderr)
        counts = ", ".join(f"{len(env.targets(k))} {k}" for k in KINDS if env.targets(k))
        print(f"ok: {path} (environment {env.name}, tier {env.tier}; {counts or 'no targets'})")
        if loaded.placeholders:
            names = ", ".join(f"${{{name}}}" for name in loaded.placeholders)
            print(f"  placeholders for unset {names}: structure checked, not their values")
    return worst


def cmd_sandbox(args: argparse.Namespace, extra: list[str]) -> int:
    from opsproof import sandbox

    state_dir = Path(args.state_dir) if args.state_dir else None
    if args.action == "up":
        started = sandbox.up(state_dir)
        print(f"sandbox up: api {started.api_url}, postgres 127.0.0.1:{started.pg_port}, "
              f"redis 127.0.0.1:{started.redis_port}")
        print(f"state: {started.state_dir} (environments/local.yaml reads vars.env there)")
    elif args.action == "backup":
        stamp = sandbox.backup(state_dir)
        print(f"sandbox backup: round {stamp} written to {sandbox.load(state_dir).variables['SANDBOX_BACKUP_DIR']}")
    elif args.action == "status":
        running = sandbox.status(state_dir)
        for name, line in running.items():
            print(f"{name:9} {line}")
        if not running:
            print("sandbox is not up")
            return EXIT_GATING
    else:
        stopped, left_alone = sandbox.down(state_dir)
        print(f"sandbox down: stopped {', '.join(stopped) if stopped else 'nothing (was not running)'}")
        for line in left_alone:
            print(f"sandbox down: left alone {line}")
    return EXIT_OK


def _tier(env_name: str) -> str | None:
    from opsproof.environment import find_environment, load_environment

    try:
        return load_environment(find_environment(env_name, project_root() / "environments")).environment.tier
    except ConfigError:
        return None  # the runs themselves will report the file's problem


def _scenarios(env_name: str) -> list[str]:
    """The environment's DR scenarios: the demo confirms each on the command line (--confirm-drill)."""
    from opsproof.environment import find_environment, load_environment

    try:
        return list(load_environment(find_environment(env_name, project_root() / "environments")).environment.dr)
    except ConfigError:
        return []


def cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    """Sandbox up, every suite against ``local``, where the reports are, sandbox down."""
    from opsproof import sandbox

    args.env = args.env or "local"
    root = project_root()
    running = sandbox.status()
    already_up = bool(running) and all(line.startswith("running") for line in running.values())
    print("opsproof demo: starting the sandbox (PostgreSQL, Redis, MariaDB, demo API, HTTPS, backups)...", flush=True)
    sandbox.up()
    if len(sandbox.backup_rounds()) < 2:
        print("opsproof demo: the sandbox's nightly backup job runs once more, so backups have a history",
              flush=True)
        sandbox.backup()
    results = {}
    try:
        drills_allowed = _tier(args.env) == "sandbox"  # the drills act on the sandbox only, never elsewhere
        for suite in SUITES:
            print(f"\n=== opsproof run --env {args.env} --suite {suite} ===", flush=True)
            destructive = ["--allow-destructive"] if drills_allowed and suite in ("backup", "dr") else []
            if destructive and suite == "dr":
                destructive += [f"--confirm-drill={name}" for name in _scenarios(args.env)]
            command = [sys.executable, "-m", "pytest", *_pytest_args(args, suite, extra), "-q", *destructive, *extra]
            code = subprocess.call(command, cwd=root)
            results[suite] = "no checks yet" if code == 5 else ("PASS" if code == 0 else f"exit {code}")
            if code == EXIT_INTERRUPTED:
                break
    finally:
        if already_up:
            print("\nopsproof demo: leaving the sandbox up (it was running before the demo)", flush=True)
        else:
            print("\nopsproof demo: stopping the sandbox", flush=True)
            sandbox.down()
    print(f"\n=== opsproof readiness --env {args.env} ===", flush=True)
    cmd_readiness(argparse.Namespace(env=args.env, since=None, format="html", output=None,
                                     reports_dir=args.reports_dir), [])
    print("\nopsproof demo summary:")
    for suite, verdict in results.items():
        print(f"  {suite:8} {verdict}")
    print(f"reports: {Path(args.reports_dir).resolve() if args.reports_dir else root / 'reports' / args.env}")
    codes = [0 if v in ("PASS", "no checks yet") else int(v.split()[-1]) for v in results.values()]
    return max(codes, default=EXIT_OK)


def cmd_history(args: argparse.Namespace, extra: list[str]) -> int:
    from opsproof.history.commands import verify_command

    return verify_command(args, project_root())


def cmd_prune(args: argparse.Namespace, extra: list[str]) -> int:
    from opsproof.history.commands import prune_command

    return prune_command(args, project_root())


def cmd_readiness(args: argparse.Namespace, extra: list[str]) -> int:
    """Compose the audit document; exit 1 when the history it rests on does not verify."""
    from datetime import date, datetime, timezone

    from opsproof.readiness import compose, render

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError as error:
        print(f"opsproof: --since: {error}", file=sys.stderr)
        return EXIT_USAGE
    from opsproof.history.commands import locate
    from opsproof.history.store import StoreError

    try:
        source = locate(args, project_root(), True if getattr(args, "from_store", False) else None)
        document = compose(source.settings, source.env_file, source.history_file, since, source=source)
    except ConfigError as error:
        print(f"opsproof: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as error:
        print(f"opsproof: evidence store: {error}", file=sys.stderr)
        return EXIT_GATING
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    beside = source.reports_dir / source.settings["name"] if source.store_url else source.history_file.parent
    output = Path(args.output) if args.output else beside / f"readiness-{stamp}.{args.format}"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(document, args.format), encoding="utf-8")
    print(f"readiness report: {output}")
    print(f"  signatures: {document['history']['signing']}")
    for line in document["missing"]:
        print(f"  missing: {line}")
    if not document["history"]["ok"]:
        print(f"history verification FAILED: {'; '.join(document['history']['problems'])}")
        return EXIT_GATING
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsproof", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def run_options(sub):
        sub.add_argument("--env", help="environment name or YAML file (default: $OPSPROOF_ENV, then local)")
        sub.add_argument("--gate", choices=("p0", "p1", "p2", "p3"), help="least severe level that blocks")
        sub.add_argument("--fail-on-warn", action="store_true", help="warnings block too")
        sub.add_argument("--expect-version", metavar="[NAME=]TAG", action="append",
                         help="tag that workloads and HTTP targets declaring a version must show (repeatable)")
        sub.add_argument("--reports-dir", help="where reports go (default reports/)")
        sub.add_argument("-n", "--workers", type=int, help="run checks in N processes (pytest-xdist)")
        sub.add_argument("--wait-lock", metavar="DURATION",
                         help="wait this long (30s, 5m) for another run of the environment to end (default: exit 3)")

    run = commands.add_parser("run", help="run checks against an environment (extra args go to pytest)")
    run.add_argument("--suite", choices=SUITES, help="smoke, nightly, backup or dr (default: all)")
    run_options(run)
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check environment files without running anything")
    validate.add_argument("files", nargs="*", help="files to check (default: environments/*.yaml)")
    validate.add_argument("--no-secrets", action="store_true",
                          help="unset ${VAR}s (and a missing vars_file) get placeholders: check structure in CI")
    validate.set_defaults(handler=cmd_validate)

    box = commands.add_parser("sandbox", help="start, inspect or stop the embedded sandbox")
    box.add_argument("action", choices=("up", "status", "backup", "down"),
                     help="backup takes another round of real backups of the running sandbox (its nightly job)")
    box.add_argument("--state-dir", help="where the sandbox keeps its state (default .opsproof/sandbox)")
    box.set_defaults(handler=cmd_sandbox)

    hist = commands.add_parser("history", help="verify the hash-chained run history of an environment")
    hist.add_argument("action", choices=("verify",))
    hist.add_argument("--env", required=True, help="environment name or YAML file")
    hist.add_argument("--reports-dir", help="where reports go (default reports/)")
    hist.add_argument("--public-key", action="append", metavar="KEY",
                      help="trust this key (SHA256 fingerprint, ssh-ed25519 line or key file); default history_public_key")
    hist.add_argument("--from-store", action="store_true", help="verify the copy in the environment's evidence_store")
    hist.set_defaults(handler=cmd_history)

    prune = commands.add_parser("prune", help="remove run folders older than --keep, recorded in the history")
    prune.add_argument("--env", required=True, help="environment name or YAML file")
    prune.add_argument("--keep", required=True, metavar="DURATION", help="keep runs younger than this (90d)")
    prune.add_argument("--keep-last", type=int, default=0, metavar="N", help="keep the N newest runs of each suite")
    prune.add_argument("--include-drills", action="store_true",
                       help="prune runs holding drill records too (they are otherwise kept 400 days)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be pruned, change nothing")
    prune.add_argument("--wait-lock", default="0", metavar="DURATION", help="wait this long for runs to end")
    prune.add_argument("--reports-dir", help="where reports go (default reports/)")
    prune.set_defaults(handler=cmd_prune)

    ready = commands.add_parser("readiness", help="compose the readiness report for audits from the history")
    ready.add_argument("--env", required=True, help="environment name or YAML file")
    ready.add_argument("--since", metavar="YYYY-MM-DD", help="start of the period (default: 90 days ago)")
    ready.add_argument("--format", choices=("html", "md", "json"), default="html")
    ready.add_argument("--output", metavar="PATH", help="where to write (default reports/<env>/readiness-<time>.<ext>)")
    ready.add_argument("--reports-dir", help="where reports go (default reports/)")
    ready.add_argument("--from-store", action="store_true",
                       help="read runs from the environment's evidence_store (the default when there is no local history)")
    ready.add_argument("--public-key", action="append", metavar="KEY", help="trust this key (as history verify)")
    ready.set_defaults(handler=cmd_readiness)

    demo = commands.add_parser("demo", help="sandbox up, every suite against local, sandbox down")
    run_options(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("run", "demo"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.handler(args, extra)
    except SandboxError as error:
        print(f"opsproof: sandbox: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def entry() -> None:
    """The ``opsproof`` command: ``main``, then the exit handlers, then the process ends at once.

    ``main`` leaves the collector as it found it, for callers in-process. A process about to end need not
    take its heap apart: the interpreter's last collection and its module teardown walked every object the
    run made (0.3 s after a smoke run, 1.2 s after 2000 checks) to free what the exit frees anyway. While
    another thread still runs, the interpreter ends as usual, waiting for it.
    """
    code = int(main() or 0)
    gc.freeze()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter runs before its teardown: logging's flush, finalizers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (opsproof run | head), a stream closed
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
