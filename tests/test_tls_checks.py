"""TLS checks against real loopback HTTPS listeners serving generated certificates, one per fault."""

from __future__ import annotations

import ssl

import pytest

from opsproof.sandbox.https import issue, serve_in_thread, server_context, write_pair

LOOPBACK = ["localhost", "127.0.0.1"]


@pytest.fixture(scope="module")
def listeners(tmp_path_factory):
    """name -> (url, CA file): valid, expiring in 3 days, expired, wrong hostname, self-signed, TLS 1.2 only."""
    directory = tmp_path_factory.mktemp("tls")
    ca = issue("test CA", [], days=30, ca=True)
    ca_file, _ = write_pair(ca, directory, "ca")
    certificates = {
        "valid": issue("localhost", LOOPBACK, issuer=ca, days=60),
        "expiring": issue("localhost", LOOPBACK, issuer=ca, days=3),
        "expired": issue("localhost", LOOPBACK, issuer=ca, days=-1, not_before_days=-30),
        "wrong_host": issue("api.example.com", ["api.example.com"], issuer=ca, days=60),
        "self_signed": issue("localhost", LOOPBACK, days=60),
        "tls12": issue("localhost", LOOPBACK, issuer=ca, days=60),
    }
    servers, urls = [], {}
    for name, issued in certificates.items():
        cert, key = write_pair(issued, directory, name)
        context = server_context(cert, key, ssl.TLSVersion.TLSv1_2 if name == "tls12" else None)
        servers.append(serve_in_thread(context))
        urls[name] = f"https://127.0.0.1:{servers[-1].server_port}"
    yield urls, str(ca_file)
    for server in servers:
        server.shutdown()
        server.server_close()


def tls_environment(urls: dict, ca_file: str) -> dict:
    tls = {"days_left": {"warn": 30, "crit": 7}, "ca_file": ca_file, "min_version": "TLSv1.3"}
    return {"tier": "sandbox", "http": {
        name: {"url": url, "timeout_s": 2, "tls": {**tls, "min_version": "TLSv1.2" if name != "tls12" else "TLSv1.3"}}
        for name, url in urls.items()}}


def test_each_certificate_fault_fails_its_own_check_with_evidence(write_env, run_checks, listeners):
    urls, ca_file = listeners
    run = run_checks(write_env(tls_environment(urls, ca_file)), "-k", "test_tls")
    outcome = {r["id"].split("::")[-1]: (r["outcome"], r["message"]) for r in run.results["checks"]
               if r["outcome"] != "passed"}
    assert run.ret == 1
    expiring = outcome.pop("test_tls_certificate_is_not_expiring[expiring]")
    assert expiring[0] == "failed" and expiring[1].startswith(("tls_days_left (2.9", "tls_days_left (3.0"))
    assert expiring[1].endswith(") >= 7 on http.expiring (crit)")
    expired = outcome.pop("test_tls_certificate_is_not_expiring[expired]")
    assert expired[0] == "failed" and expired[1].startswith("tls_days_left (-1.0) >= 7 on http.expired")
    assert outcome == {
        "test_tls_chain_verifies[expired]": ("failed", "tls_chain_error ('certificate has expired') == None on http.expired"),
        "test_tls_certificate_matches_hostname[wrong_host]":
            ("failed", "tls_names_match 127.0.0.1 (false) == true on http.wrong_host"),
        "test_tls_chain_verifies[self_signed]":
            ("failed", "tls_chain_error ('self-signed certificate') == None on http.self_signed"),
        "test_tls_protocol_is_recent[tls12]": ("failed", "tls_version (1.2) >= 1.3 on http.tls12"),
    }
    valid = {m["measure"]: m["value"] for m in run.record("test_tls_certificate_is_not_expiring", "valid")["measurements"]}
    assert 59 < valid["tls_days_left"] <= 60
    protocol = run.record("test_tls_protocol_is_recent", "valid")["measurements"][0]
    assert protocol == {"measure": "tls_protocol", "value": "TLSv1.3"}


def test_system_store_does_not_trust_a_private_ca(write_env, run_checks, listeners):
    urls, _ = listeners
    environment = {"tier": "sandbox", "http": {"valid": {"url": urls["valid"], "tls": {}}}}
    run = run_checks(write_env(environment), "-k", "chain")
    assert run.record("test_tls_chain_verifies")["message"] == (
        "tls_chain_error ('unable to get local issuer certificate') == None on http.valid")


def test_sandbox_https_listener_passes_every_tls_check(sandbox, write_env, run_checks):
    environment = {"tier": "sandbox", "http": {"secure": {
        "url": sandbox.variables["SANDBOX_HTTPS_URL"], "verify_tls": True,
        "health": {"path": "/health", "json": {"status": "healthy"}},
        "tls": {"days_left": {"warn": 14, "crit": 7}, "ca_file": sandbox.variables["SANDBOX_CA_FILE"]}}}}
    run = run_checks(write_env(environment), "-k", "test_tls")
    assert run.ret == 0, run.output
    assert {r["outcome"] for r in run.results["checks"]} == {"passed"}
