"""The ``opsproof`` command: run, validate, sandbox up|status|down, demo.

Exit codes: 0 nothing gating failed; 1 a gating check failed or errored; 2 interrupted;
4 usage or environment-file error.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from opsproof.errors import ConfigError, SandboxError
from opsproof.paths import project_root

EXIT_OK, EXIT_GATING, EXIT_INTERRUPTED, EXIT_USAGE = 0, 1, 2, 4
SUITES = ("smoke", "nightly", "backup", "dr")
# Plugins that arrive with dependencies but play no part in a checks run: not loading them saves ~0.4 s.
UNUSED_PLUGINS = ("anyio", "pytest_httpserver")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2, which means "interrupted" here
        self.exit(EXIT_USAGE, f"opsproof: error: {message}\n")


def _pytest_args(args: argparse.Namespace, suite: str | None) -> list[str]:
    root = project_root()
    command = ["-c", str(root / "pyproject.toml"), "--rootdir", str(root), str(root / "checks")]
    for plugin in UNUSED_PLUGINS:
        command += ["-p", f"no:{plugin}"]
    if args.env:
        command += ["--env", args.env]
    if suite:
        command += ["--suite", suite]
    if args.gate:
        command += ["--gate", args.gate]
    if args.fail_on_warn:
        command.append("--fail-on-warn")
    if args.reports_dir:
        command += ["--reports-dir", str(Path(args.reports_dir).resolve())]
    if args.workers:
        command += ["-n", str(args.workers)]
    return command


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    return int(pytest.main(_pytest_args(args, args.suite) + extra))


def cmd_validate(args: argparse.Namespace, extra: list[str]) -> int:
    from opsproof.environment import load_environment

    files = [Path(f) for f in args.files] or sorted((project_root() / "environments").glob("*.y*ml"))
    worst = EXIT_OK
    for path in files:
        try:
            loaded = load_environment(path)
        except ConfigError as error:
            print(f"opsproof: {error}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        env = loaded.environment
        counts = ", ".join(f"{len(env.targets(k))} {k}" for k in ("http", "postgres", "redis") if env.targets(k))
        print(f"ok: {path} (environment {env.name}, tier {env.tier}; {counts or 'no targets'})")
    return worst


def cmd_sandbox(args: argparse.Namespace, extra: list[str]) -> int:
    from opsproof import sandbox

    state_dir = Path(args.state_dir) if args.state_dir else None
    if args.action == "up":
        started = sandbox.up(state_dir)
        print(f"sandbox up: api {started.api_url}, postgres 127.0.0.1:{started.pg_port}, "
              f"redis 127.0.0.1:{started.redis_port}")
        print(f"state: {started.state_dir} (environments/local.yaml reads vars.env there)")
    elif args.action == "status":
        running = sandbox.status(state_dir)
        for name, line in running.items():
            print(f"{name:9} {line}")
        if not running:
            print("sandbox is not up")
            return EXIT_GATING
    else:
        stopped = sandbox.down(state_dir)
        print(f"sandbox down: stopped {', '.join(stopped) if stopped else 'nothing (was not running)'}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    """Sandbox up, every suite against ``local``, where the reports are, sandbox down."""
    from opsproof import sandbox

    args.env = args.env or "local"
    root = project_root()
    print("opsproof demo: starting the sandbox (PostgreSQL, Redis, demo API)...", flush=True)
    sandbox.up()
    results = {}
    try:
        for suite in SUITES:
            print(f"\n=== opsproof run --env {args.env} --suite {suite} ===", flush=True)
            command = [sys.executable, "-m", "pytest", *_pytest_args(args, suite), "-q", *extra]
            code = subprocess.call(command, cwd=root)
            results[suite] = "no checks yet" if code == 5 else ("PASS" if code == 0 else f"exit {code}")
            if code == EXIT_INTERRUPTED:
                break
    finally:
        print("\nopsproof demo: stopping the sandbox", flush=True)
        sandbox.down()
    print("\nopsproof demo summary:")
    for suite, verdict in results.items():
        print(f"  {suite:8} {verdict}")
    print(f"reports: {Path(args.reports_dir).resolve() if args.reports_dir else root / 'reports' / args.env}")
    codes = [0 if v in ("PASS", "no checks yet") else int(v.split()[-1]) for v in results.values()]
    return max(codes, default=EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsproof", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def run_options(sub):
        sub.add_argument("--env", help="environment name or YAML file (default: $OPSPROOF_ENV, then local)")
        sub.add_argument("--gate", choices=("p0", "p1", "p2", "p3"), help="least severe level that blocks")
        sub.add_argument("--fail-on-warn", action="store_true", help="warnings block too")
        sub.add_argument("--reports-dir", help="where reports go (default reports/)")
        sub.add_argument("-n", "--workers", type=int, help="run checks in N processes (pytest-xdist)")

    run = commands.add_parser("run", help="run checks against an environment (extra args go to pytest)")
    run.add_argument("--suite", choices=SUITES, help="smoke, nightly, backup or dr (default: all)")
    run_options(run)
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check environment files without running anything")
    validate.add_argument("files", nargs="*", help="files to check (default: environments/*.yaml)")
    validate.set_defaults(handler=cmd_validate)

    box = commands.add_parser("sandbox", help="start, inspect or stop the embedded sandbox")
    box.add_argument("action", choices=("up", "status", "down"))
    box.add_argument("--state-dir", help="where the sandbox keeps its state (default .opsproof/sandbox)")
    box.set_defaults(handler=cmd_sandbox)

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


if __name__ == "__main__":
    sys.exit(main())
