"""A canary secret planted in an environment never reaches any file a run writes, nor its output."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, sandbox_environment

from opsproof.errors import ConfigError

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


def canary(tag: str) -> str:
    """A secret with the characters repr, JSON, HTML and XML each escape differently, between runs of
    letters unique to it: whatever encoding a leak takes, those runs survive it and the scan finds them."""
    return f"{tag}1'{tag}2\\{tag}3\"{tag}4<{tag}5&{tag}6>{tag}7"


def traces(secret: str) -> list[str]:
    """Its runs of 7 or more letters and digits: no escaping changes them, and they do not occur by chance."""
    return [run for run in re.split(r"[^A-Za-z0-9]+", secret) if len(run) >= 7]


def echo_headers(request):
    from werkzeug import Response

    return Response(json.dumps({"headers": dict(request.headers)}), content_type="application/json")


def test_canaries_in_every_encoding_reach_no_file_and_no_output(
    sandbox, write_env, run_checks, httpserver, monkeypatch, tmp_path
):
    """Basic credentials (base64), headers, request headers and a JSON body field, echoed back by the
    sandbox API and a test server, leave no trace in report.html, junit.xml, results.json, history.jsonl
    or the terminal, in any encoding (raw, repr, JSON, HTML, XML and their combinations)."""
    canaries = {"CANARY_BASIC_PASSWORD": canary("kBasPw"), "CANARY_HEADER": canary("kTgtHd"),
                "ECHO_HEADER": canary("kReqHd"), "ECHO_NOTE": canary("kBodyF"), "CANARY_BEARER": canary("kTokEn")}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    basic = base64.b64encode(f"operator:{canaries['CANARY_BASIC_PASSWORD']}".encode()).decode()
    httpserver.expect_request("/health").respond_with_handler(echo_headers)
    echoed = {"json.note": "-", "headers.Authorization": "-", "headers.X-Canary": "-", "headers.X-Request-Canary": "-"}
    environment = {"tier": "sandbox", "http": {
        "api": {"url": sandbox.api_url, "timeout_s": 3,
                "auth": {"basic_user": "operator", "basic_password": "${CANARY_BASIC_PASSWORD}"},
                "headers": {"X-Canary": "${CANARY_HEADER}"},
                "requests": [{"name": "echo", "method": "POST", "path": "/v1/echo",
                              "request_headers": {"X-Request-Canary": "${ECHO_HEADER}"},
                              "json_body": {"note": "${ECHO_NOTE}"}, "json": echoed}]},
        "echo": {"url": httpserver.url_for("/"), "timeout_s": 3, "auth": {"bearer_token": "${CANARY_BEARER}"},
                 "health": {"path": "/health", "json": {"headers.Authorization": "-"}}},
    }}
    run = run_checks(write_env(environment), "-v", "-rA", "-k", "smoke_request or health_reports")
    assert run.ret == 1
    assert run.record("test_smoke_request_returns_expected_content")["message"] == (
        "echo.content ({'json.note': '***', 'headers.Authorization': 'Basic ***', 'headers.X-Canary': '***', "
        "'headers.X-Request-Canary': '***'}) == {'json.note': '-', 'headers.Authorization': '-', "
        "'headers.X-Canary': '-', 'headers.X-Request-Canary': '-'} on http.api")
    assert run.record("test_health_reports_expected_fields", "echo")["message"] == (
        "health_fields ({'headers.Authorization': 'Bearer ***'}) == {'headers.Authorization': '-'} on http.echo")
    written = {path.name: path.read_bytes() for path in (tmp_path / "reports").rglob("*") if path.is_file()}
    assert {"report.html", "junit.xml", "results.json", "history.jsonl"} <= set(written)
    wanted = [trace for value in (basic, *canaries.values()) for trace in traces(value)]
    assert len(wanted) > 7 * len(canaries)
    leaks = [f"{name} holds {trace}" for name, data in written.items() for trace in wanted if trace.encode() in data]
    leaks += [f"the terminal shows {trace}" for trace in wanted if trace in run.output]
    assert leaks == []


def escaped_forms(secret: str) -> dict[str, str]:
    """The secret as each writer of a run's outputs escapes it, alone and nested, by the libraries themselves."""
    import html
    import xml.etree.ElementTree as ET
    from urllib.parse import quote

    import markupsafe

    def xml_attribute(text):
        return ET.tostring(ET.Element("failure", message=text), encoding="unicode")

    in_text = f"token {secret} sent"
    return {
        "raw": in_text, "repr": repr(in_text), "repr in a dict": str({"note": in_text}),
        "JSON": json.dumps(in_text), "JSON, not ASCII": json.dumps(in_text, ensure_ascii=False),
        "HTML": html.escape(in_text), "HTML text": html.escape(in_text, quote=False),
        "markupsafe": str(markupsafe.escape(in_text)), "XML attribute": xml_attribute(in_text),
        "URL": quote(in_text, safe=""),
        "JSON in HTML": html.escape(json.dumps(in_text)), "HTML in JSON": json.dumps(html.escape(in_text)),
        "repr in JSON": json.dumps(repr(in_text)), "repr in XML": xml_attribute(repr({"note": in_text})),
        "JSON in JSON": json.dumps(json.dumps(in_text)),
        "pytest-html log": str(markupsafe.escape(json.dumps({"log": html.escape(repr(in_text))}))),
    }


def test_every_escaped_form_of_a_secret_is_masked_in_text_and_in_files():
    from opsproof.secrets import Redactor

    secret = canary("kEscAp") + "é\t"
    redactor = Redactor()
    redactor.register(secret)
    for name, form in escaped_forms(secret).items():
        assert traces(secret)[0] in form, name  # the form does hold the secret
        assert not [t for t in traces(secret) if t in redactor.redact(form)], f"{name}: {redactor.redact(form)}"
        assert not [t for t in traces(secret) if t.encode() in redactor.redact_bytes(form.encode())], name
    assert redactor.redact(escaped_forms(secret)["JSON in HTML"]) == "&quot;token *** sent&quot;"


def test_a_check_printing_escaped_secrets_leaves_no_trace(pytester, monkeypatch):
    """Output already escaped by the code that printed it (JSON, HTML of a repr) is masked as well."""
    secret = canary("kPrEsc")
    monkeypatch.setenv("CANARY_API_TOKEN", secret)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "canary.yaml").write_text(textwrap.dedent("""\
        tier: staging
        http:
          api:
            url: http://127.0.0.1:9/
            auth: {bearer_token: "${CANARY_API_TOKEN}"}
    """))
    pytester.makepyfile(test_leaky=textwrap.dedent("""
        import html, json
        import pytest

        @pytest.mark.p0
        def test_prints_escaped(http_target, evidence):
            token = http_target.auth.bearer_token.get_secret_value()
            print(json.dumps({"token": token}), html.escape(repr(token)), json.dumps(html.escape(token)))
            evidence.record("sent", {"authorization": f"Bearer {token}"})
            assert {"token": token} == {}
    """))
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--env", "canary", "-rA")
    assert result.ret == 1
    output = result.stdout.str() + result.stderr.str()
    written = {p.name: p.read_bytes() for p in (pytester.path / "reports").rglob("*") if p.is_file()}
    assert {"report.html", "junit.xml", "results.json", "history.jsonl"} <= set(written)
    leaks = [f"{name} holds {t}" for name, data in written.items() for t in traces(secret) if t.encode() in data]
    assert leaks + [f"the terminal shows {t}" for t in traces(secret) if t in output] == []


def test_a_secret_shorter_than_4_characters_is_refused_before_anything_runs(tmp_path, write_env, monkeypatch):
    monkeypatch.setenv("SHORT_PASSWORD", "abc")
    path = write_env({"tier": "staging", "redis": {"cache": {"url": "redis://127.0.0.1:6379/0",
                                                              "password": "${SHORT_PASSWORD}"}}})
    result = subprocess.run([sys.executable, "-m", "opsproof.cli", "run", "--env", str(path), "--reports-dir",
                             str(tmp_path / "reports")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 4
    assert [line for line in result.stderr.splitlines() if line.strip()] == [(
        "ERROR: environments/under-test.yaml: redis.cache.password: ${SHORT_PASSWORD} holds a secret of 3 "
        "characters; secrets shorter than 4 characters are refused, since they cannot be redacted without "
        "masking ordinary text")]
    assert "abc" not in result.stdout + result.stderr
    assert not (tmp_path / "reports").exists()


def test_a_literal_header_that_names_no_credential_is_not_a_secret(write_env):
    """``Accept: */*`` written in the file is not refused as a short secret, nor masked; a credential
    header written literally is still a secret, and a header from a ${VAR} always is."""
    from opsproof.environment import load_environment

    def loaded(headers: dict, variables=None):
        return load_environment(write_env({"tier": "staging", "http": {"api": {
            "url": "http://127.0.0.1:9", "headers": headers}}}), variables or {})

    assert loaded({"Accept": "*/*", "X-Env": "dev"}).secrets == frozenset()
    assert "s3cr3t-cookie" in loaded({"Cookie": "s3cr3t-cookie"}).secrets
    assert "innocent-name" in loaded({"X-Env": "${ENV_LABEL}"}, {"ENV_LABEL": "innocent-name"}).secrets
    with pytest.raises(ConfigError, match="http.api.headers.X-Api-Key: holds a secret of 3 characters"):
        loaded({"X-Api-Key": "abc"})
