"""TLS: the runbook's "check certificate expiration", plus hostname, chain and protocol version."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p1
def test_tls_certificate_is_not_expiring(http_target, tls_certificate, evidence):
    evidence.record("tls_not_after", tls_certificate.not_after)
    threshold = http_target.tls.days_left
    if threshold is None:
        evidence.expect("tls_days_left", tls_certificate.days_left, ">", 0)
    else:
        evidence.within("tls_days_left", tls_certificate.days_left, threshold)


@pytest.mark.p0
def test_tls_certificate_matches_hostname(tls_certificate, evidence):
    evidence.record("tls_certificate_names", list(tls_certificate.names))
    evidence.expect(f"tls_names_match {tls_certificate.hostname}", tls_certificate.hostname_matches, "==", True)


@pytest.mark.p0
def test_tls_chain_verifies(tls_certificate, evidence):
    evidence.record("tls_issuer", tls_certificate.issuer)
    evidence.expect("tls_chain_error", tls_certificate.chain_error, "==", None)


@pytest.mark.p1
def test_tls_protocol_is_recent(http_target, tls_certificate, evidence):
    evidence.record("tls_protocol", tls_certificate.protocol)
    minimum = float(http_target.tls.min_version.removeprefix("TLSv"))
    evidence.expect("tls_version", tls_certificate.version, ">=", minimum)
