"""Benchmark: a smoke suite over 200 HTTP endpoints, opsproof vs the same probes as a sequential curl loop.

Each endpoint is probed for its status (200) and a JSON field (``status == healthy``): opsproof as 200
HTTP targets (two checks each, with all three reports written), the baseline as one ``curl`` + ``jq``
per endpoint, one after another. Starts its own sandbox (or uses ``--sandbox DIR``); the sides run
interleaved; prints both median wall times, the ratio and opsproof's peak RSS. ``--workers N`` adds
a side that runs opsproof with ``-n N`` (pytest-xdist).
Usage: ``.venv/bin/python bench/http_endpoints.py [--endpoints 1000] [--runs 3] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from timing import Side, before, compare, sandbox, users_env

ROOT = Path(__file__).resolve().parent.parent
CURL_LOOP = r"""
failures=0
for i in $(seq 1 "$ENDPOINTS"); do
  out=$(curl -s --max-time 5 -w '\n%{http_code}' "$API_URL/health?probe=$i")
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  if [ "$code" != 200 ] || ! printf '%s' "$body" | jq -e '.status == "healthy"' >/dev/null; then
    echo "FAILED endpoint $i: $code"; failures=$((failures + 1))
  fi
done
exit $((failures > 0))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", help="run opsproof with -n WORKERS (a number or auto)")
    parser.add_argument("--sandbox", metavar="DIR", help="measure against this sandbox (started if down, left up)")
    parser.add_argument("--before", metavar="DIR", help="also time this checkout of opsproof, side by side")
    args = parser.parse_args()
    for tool in ("curl", "jq"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the curl baseline")
    with sandbox(args.sandbox, "opsproof-bench-http-") as (box, state_dir):
        targets = {f"endpoint{i:04d}": {"url": box.api_url, "timeout_s": 5, "health": {
            "path": f"/health?probe={i}", "status": 200, "json": {"status": "healthy"}}}
            for i in range(1, args.endpoints + 1)}
        env_file = state_dir / "bench-http.yaml"  # the file is named as its environment
        env_file.write_text(yaml.safe_dump({"name": "bench-http", "tier": "sandbox", "http": targets}))
        curl = Side("curl loop", ["bash", "-c", CURL_LOOP],
                    {**os.environ, "API_URL": box.api_url, "ENDPOINTS": str(args.endpoints)})
        opsproof_cmd = [str(Path(sys.executable).parent / "opsproof"), "run", "--env", str(env_file),
                        "--reports-dir", str(state_dir / "reports"), "-q",
                        "-k", "test_health_returns_expected_status or test_health_reports_expected_fields"]
        opsproof = Side("opsproof", opsproof_cmd, users_env())
        sides = [curl, opsproof]
        if args.workers:
            sides.append(Side(f"opsproof -n {args.workers}", opsproof_cmd + ["-n", args.workers], users_env()))
        if args.before:
            sides.append(Side("opsproof before", *before(opsproof_cmd, args.before)))
        compare(sides, args.runs, ROOT)
    print(f"smoke suite over {args.endpoints} HTTP endpoints (status + JSON field), median of {args.runs} runs "
          "each, interleaved:")
    print(f"  sequential curl + jq loop: wall {curl.median_s * 1000:7.0f} ms, cpu {curl.median_cpu_s * 1000:7.0f} ms")
    for side in sides[1:]:
        print(f"  {side.label} run ({2 * args.endpoints} checks, all 3 reports): wall {side.median_s * 1000:7.0f} ms, "
              f"cpu {side.median_cpu_s * 1000:7.0f} ms; ratio wall {side.median_s / curl.median_s:.2f}, "
              f"cpu {side.median_cpu_s / curl.median_cpu_s:.2f} (peak RSS {side.peak_rss_mb:.0f} MB)")

if __name__ == "__main__":
    main()
