"""Benchmark: the runbooks' daily health check as a shell script vs as `opsproof run --suite smoke`.

Starts its own sandbox, runs each side ``--runs`` times (a warm-up run first), and prints both
median wall times and the ratio. Usage: ``.venv/bin/python bench/daily_check.py [--runs 11]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from opsproof import sandbox as sandbox_module
from opsproof.sandbox import postgres as sandbox_pg
from timing import median_of

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    for tool in ("curl", "jq", "psql", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the shell baseline (make bench installs it)")
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-bench-"))
    box = sandbox_module.up(state_dir)
    try:
        env_file = state_dir / "daily-check.yaml"  # beside the sandbox's vars.env, which it reads
        shutil.copyfile(ROOT / "bench" / "daily-check.yaml", env_file)
        shell_env = {
            **os.environ, "API_URL": box.api_url, "PGHOST": "127.0.0.1", "PGPORT": str(box.pg_port),
            "PGUSER": sandbox_pg.APP_USER, "PGDATABASE": sandbox_pg.DATABASE, "PGPASSWORD": box.pg_password,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(box.redis_port), "REDISCLI_AUTH": box.redis_password,
        }
        shell_s = median_of(args.runs, ["bash", str(ROOT / "bench" / "runbook-daily-check.sh")], shell_env, ROOT,
                            "shell script", failure_word="FAILED")
        opsproof_cmd = [str(Path(sys.executable).parent / "opsproof"), "run", "--env", str(env_file), "--suite",
                        "smoke", "--reports-dir", str(state_dir / "reports"), "-q"]
        # as users run it: bytecode caches on (some CI shells set PYTHONDONTWRITEBYTECODE, which makes
        # every run recompile and re-rewrite the check modules)
        opsproof_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        opsproof_s = median_of(args.runs, opsproof_cmd, opsproof_env, ROOT, "opsproof smoke")
    finally:
        sandbox_module.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    print(f"daily health check, median of {args.runs} runs against the sandbox:")
    print(f"  shell (curl, psql, redis-cli, one after another): {shell_s * 1000:7.0f} ms")
    print(f"  opsproof run --suite smoke (with all 3 reports):  {opsproof_s * 1000:7.0f} ms")
    print(f"  ratio opsproof / shell: {opsproof_s / shell_s:.2f}")


if __name__ == "__main__":
    main()
