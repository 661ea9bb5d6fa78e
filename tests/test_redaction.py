"""A canary secret planted in an environment never reaches any file a run writes, nor its output."""

from __future__ import annotations

import textwrap

from conftest import ROOT, sandbox_environment

CANARY_PASSWORD = "canary-pw-7f3a9c1e"
CANARY_TOKEN = "canary-token-b81d44"


def scan(directory, output: str) -> list[str]:
    leaks = [f"output mentions {c}" for c in (CANARY_PASSWORD, CANARY_TOKEN) if c in output]
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path} holds {c}" for c in (CANARY_PASSWORD, CANARY_TOKEN) if c.encode() in data]
    return leaks


def test_real_checks_failing_with_secrets_in_dsn_and_headers_leak_nothing(
    sandbox, write_env, run_checks, refused_port, monkeypatch, tmp_path, api_faults
):
    monkeypatch.setenv("CANARY_PG_PASSWORD", CANARY_PASSWORD)
    monkeypatch.setenv("CANARY_API_TOKEN", CANARY_TOKEN)
    api_faults(health="degraded")
    environment = sandbox_environment(sandbox)
    environment["http"]["api"]["headers"] = {"Authorization": "Bearer ${CANARY_API_TOKEN}"}
    environment["postgres"]["main"] = {
        "dsn": f"postgresql://bankchain:${{CANARY_PG_PASSWORD}}@127.0.0.1:{refused_port}/bankchain",
    }
    run = run_checks(write_env(environment), "-v", "-rA")
    assert run.ret == 1
    assert run.record("test_postgres_answers_select_1")["outcome"] == "error"
    assert scan(tmp_path / "reports", run.output) == []


def test_secrets_printed_logged_and_raised_are_scrubbed_everywhere(pytester, monkeypatch):
    monkeypatch.setenv("CANARY_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makefile(".ini", pytest="[pytest]\nlog_level = INFO\n")
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "canary.yaml").write_text(textwrap.dedent("""\
        tier: staging
        http:
          api:
            url: http://127.0.0.1:9/
            headers: {Authorization: "Bearer ${CANARY_API_TOKEN}"}
    """))
    pytester.makepyfile(test_leaky=textwrap.dedent("""
        import logging, sys
        import pytest

        def secret(http_target):
            return http_target.headers["Authorization"].get_secret_value()

        @pytest.mark.p0
        def test_prints_and_logs(http_target):
            print("stdout:", secret(http_target))
            print("stderr:", secret(http_target), file=sys.stderr)
            logging.getLogger("leaky").warning("log: %s", secret(http_target))
            assert False, "message: " + secret(http_target)

        @pytest.mark.p0
        def test_raises(http_target, evidence):
            evidence.record("header", secret(http_target))
            raise RuntimeError("boom with " + secret(http_target))
    """))
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--env", "canary", "-rA", "-n", "2")
    assert result.ret == 1
    output = result.stdout.str() + result.stderr.str()
    assert "***" in output
    assert scan(pytester.path / "reports", output) == []
    assert len(list((pytester.path / "reports").glob("*/*/*.*"))) == 3  # the run folder; history.jsonl beside it
