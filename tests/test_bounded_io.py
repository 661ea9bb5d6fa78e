"""Hostile servers cost their timeout and a bounded amount of memory (issue 18, items 1, 2, 4, 5).

Each probe runs in a child process so its peak RSS is its own; time and RSS are printed (run with -s to
see them) and asserted only as generous bounds. Every case fails on the code before the fix: the
trickles passed after 121 s / 150 s / 97 s, the endless body and the gzip bomb grew to gigabytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import hostile
import pytest

from opsproof.sandbox.https import issue, serve_in_thread, server_context, write_pair

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""\
    import json, sys, time
    from opsproof.errors import ProbeError
    kind, url, timeout_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if kind == "http":
        from opsproof.http import HttpProbe
        probe, call = HttpProbe(url, timeout_s, follow_redirects=True), lambda p: p.get("/health").status_code
    else:
        from opsproof.redis import RedisProbe
        probe, call = RedisProbe(url, None, timeout_s), lambda p: p.ping_ms()
    started = time.monotonic()
    try:
        outcome = {"value": call(probe)}
    except ProbeError as error:
        outcome = {"error": str(error), "unreachable": error.unreachable, "retryable": error.retryable}
    outcome["elapsed_s"] = round(time.monotonic() - started, 2)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would include the forking pytest's RSS
    vm_hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    outcome["peak_rss_mb"] = round(vm_hwm_kb / 1024, 1)
    print(json.dumps(outcome))
""")


def probe_in_child(kind: str, url: str, timeout_s: float = 3, limit_s: float = 60) -> dict:
    """One probe call in a fresh interpreter: its outcome, elapsed time and peak RSS."""
    done = subprocess.run([sys.executable, "-c", CHILD, kind, url, str(timeout_s)], capture_output=True, text=True,
                          timeout=limit_s, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{kind} {url}: {outcome}")  # the measurement, for the report (pytest -s)
    return outcome


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-headers"])
def test_a_trickled_response_errors_at_its_timeout_not_after_the_last_byte(mode):
    with hostile.serve(mode) as port:
        outcome = probe_in_child("http", f"http://127.0.0.1:{port}", timeout_s=3)
    assert outcome.get("error") == "GET /health: no response within 3 s (ReadTimeout)", outcome
    assert outcome["unreachable"] and outcome["retryable"]
    assert outcome["elapsed_s"] < 3 + 5  # 3 s, plus at most one trickled byte's wait and a loaded machine
    assert outcome["peak_rss_mb"] < 200


def test_redis_answering_a_byte_every_half_second_errors_at_its_timeout():
    with hostile.serve("redis-slow", every_s=0.5) as port:
        outcome = probe_in_child("redis", f"redis://127.0.0.1:{port}/0", timeout_s=2)
    assert outcome.get("error") == "PING: no complete answer within 2 s", outcome
    assert outcome["unreachable"]
    assert outcome["elapsed_s"] < 2 + 5  # not 3.5 s of PONG with no error, nor 11 client retries
    assert outcome["peak_rss_mb"] < 200


@pytest.mark.parametrize("mode", ["endless", "gzip-bomb"])
def test_a_body_past_the_limit_is_refused_with_memory_bounded(mode):
    with hostile.serve(mode, bomb_bytes=2 << 30) as port:  # the bomb: 2 GiB of zeros in about 2 MB
        outcome = probe_in_child("http", f"http://127.0.0.1:{port}", timeout_s=30)
    assert outcome.get("error") == ("GET /health: body larger than 8388608 bytes (read stopped there; the target's "
                                    "max_body_bytes sets the limit)"), outcome
    assert outcome["unreachable"] and not outcome["retryable"]
    assert outcome["elapsed_s"] < 15  # the limit is reached in well under a second; not the 30 s deadline
    assert outcome["peak_rss_mb"] < 250  # 8 MiB body and one decoded chunk (16 MiB at most), not gigabytes


def test_too_many_redirects_is_a_probe_error_not_a_traceback():
    with hostile.serve("redirect-loop") as port:
        outcome = probe_in_child("http", f"http://127.0.0.1:{port}", timeout_s=5)
    assert outcome.get("error") == "GET /health: Exceeded maximum allowed redirects.", outcome
    assert outcome["unreachable"] and not outcome["retryable"]


def test_a_body_over_the_limit_is_read_once_and_the_targets_other_checks_skip(write_env, run_checks):
    """Item 4: cached like a refused connection; under eventually it is not retried (waiting cannot help)."""
    with hostile.serve("gzip-bomb", bomb_bytes=64 << 20) as port:
        url = f"http://127.0.0.1:{port}"
        env = {"tier": "sandbox", "http": {"bomb": {
            "url": url, "timeout_s": 5, "max_body_bytes": 1 << 20, "eventually": {"within_s": 60, "every_s": 1},
            "health": {"path": "/health"}, "ready": {"path": "/ready"}, "latency": {"path": "/health", "samples": 3},
        }}}
        started = time.monotonic()
        run = run_checks(write_env(env), "-k", "test_health_returns or test_ready or test_latency")
        elapsed_s = time.monotonic() - started
    first = run.record("test_health_returns_expected_status", "bomb")
    assert first["outcome"] == "error" and "body larger than 1048576 bytes" in first["message"]
    attempts = next(m for m in first["measurements"] if m["measure"] == "attempts")["value"]
    assert len(attempts) == 1, attempts  # not retried for the whole 60 s window
    for check in ("test_ready_components_are_ready", "test_latency_p95_within_threshold"):
        record = run.record(check, "bomb")
        assert record["outcome"] == "skipped" and "http.bomb is unreachable" in record["message"], record
        assert "body larger than 1048576 bytes" in record["message"]
    assert elapsed_s < 45, elapsed_s


@pytest.fixture(scope="module")
def expired_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("expired")
    ca = issue("test CA", [], days=30, ca=True)
    ca_file, _ = write_pair(ca, directory, "ca")
    cert, key = write_pair(issue("localhost", ["localhost", "127.0.0.1"], issuer=ca, days=-2, not_before_days=-30),
                           directory, "expired")
    server = serve_in_thread(server_context(cert, key))
    yield f"https://127.0.0.1:{server.server_port}", str(ca_file)
    server.shutdown()
    server.server_close()


def test_a_tls_failure_on_the_health_request_leaves_the_tls_checks_to_judge(write_env, run_checks, expired_server):
    """Item 5: the health GET fails on the expired certificate; days left is still measured and failed."""
    url, ca_file = expired_server
    env = {"tier": "sandbox", "http": {"old": {
        "url": url, "timeout_s": 3, "health": {"path": "/health"},
        "tls": {"days_left": {"warn": 30, "crit": 7}, "ca_file": ca_file}}}}
    run = run_checks(write_env(env), "-k", "test_health_returns or test_tls")
    health = run.record("test_health_returns_expected_status", "old")
    assert health["outcome"] == "error" and "certificate has expired" in health["message"], health
    days = run.record("test_tls_certificate_is_not_expiring", "old")
    assert days["outcome"] == "failed" and days["message"].startswith("tls_days_left (-2."), days
    chain = run.record("test_tls_chain_verifies", "old")
    assert chain["outcome"] == "failed" and "certificate has expired" in chain["message"]


def test_a_missing_ca_file_is_refused_at_load(write_env, tmp_path):
    from opsproof.environment import load_environment
    from opsproof.errors import ConfigError

    path = write_env({"tier": "sandbox", "http": {"api": {"url": "https://127.0.0.1:1", "tls": {
        "ca_file": str(tmp_path / "gone.pem")}}}})
    with pytest.raises(ConfigError) as refused:
        load_environment(path)
    assert str(refused.value).endswith(f"http.api.tls.ca_file: {tmp_path / 'gone.pem'}: no such file")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    path = write_env({"tier": "sandbox", "http": {"api": {"url": "https://127.0.0.1:1", "tls": {
        "ca_file": str(tmp_path / "junk.pem")}}}})
    with pytest.raises(ConfigError, match=r"http\.api\.tls\.ca_file: .*junk\.pem is not a PEM bundle"):
        load_environment(path)


def test_tls_handshake_is_bounded_as_a_whole(silent_port):
    """A server that accepts and never speaks TLS costs the timeout once per handshake, then an error."""
    from opsproof.errors import ProbeError
    from opsproof.tls import inspect_tls

    started = time.monotonic()
    with pytest.raises(ProbeError, match="no handshake within 1 s"):
        inspect_tls(f"https://127.0.0.1:{silent_port}", timeout_s=1)
    assert time.monotonic() - started < 1 + 4

