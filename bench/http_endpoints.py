"""Benchmark: a smoke suite over 200 HTTP endpoints, opsproof vs the same probes as a sequential curl loop.

Each endpoint is probed for its status (200) and a JSON field (``status == healthy``): opsproof as 200
HTTP targets (two checks each, with all three reports written), the baseline as one ``curl`` + ``jq``
per endpoint, one after another. Starts its own sandbox; prints both median wall times and the ratio.
Usage: ``.venv/bin/python bench/http_endpoints.py [--endpoints 200] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from opsproof import sandbox as sandbox_module
from timing import median_of

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
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for tool in ("curl", "jq"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for the curl baseline")
    state_dir = Path(tempfile.mkdtemp(prefix="opsproof-bench-http-"))
    box = sandbox_module.up(state_dir)
    try:
        targets = {f"endpoint{i:03d}": {"url": box.api_url, "timeout_s": 5, "health": {
            "path": f"/health?probe={i}", "status": 200, "json": {"status": "healthy"}}}
            for i in range(1, args.endpoints + 1)}
        env_file = state_dir / "bench.yaml"
        env_file.write_text(yaml.safe_dump({"name": "bench", "tier": "sandbox", "http": targets}))
        curl_s = median_of(args.runs, ["bash", "-c", CURL_LOOP],
                           {**os.environ, "API_URL": box.api_url, "ENDPOINTS": str(args.endpoints)}, ROOT, "curl loop")
        opsproof_cmd = [str(Path(sys.executable).parent / "opsproof"), "run", "--env", str(env_file),
                        "--reports-dir", str(state_dir / "reports"), "-q",
                        "-k", "test_health_returns_expected_status or test_health_reports_expected_fields"]
        opsproof_s = median_of(args.runs, opsproof_cmd, dict(os.environ), ROOT, "opsproof")
    finally:
        sandbox_module.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    print(f"smoke suite over {args.endpoints} HTTP endpoints (status + JSON field), median of {args.runs} runs:")
    print(f"  sequential curl + jq loop:                          {curl_s * 1000:7.0f} ms")
    print(f"  opsproof run ({2 * args.endpoints} checks, all 3 reports):          {opsproof_s * 1000:7.0f} ms")
    print(f"  ratio opsproof / curl loop: {opsproof_s / curl_s:.2f}")


if __name__ == "__main__":
    main()
