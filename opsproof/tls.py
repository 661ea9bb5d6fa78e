"""TLS probe: the certificate a server presents, read once, and each property the runbooks ask about.

>>> info = inspect_tls("https://api.example.com", timeout_s=3)      # doctest: +SKIP
>>> round(info.days_left), info.hostname_matches, info.chain_error, info.protocol
(61, True, None, 'TLSv1.3')
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from opsproof.deadline import cut_off_after
from opsproof.errors import ProbeError, first_line

VERSIONS = {"SSLv3": 0.3, "TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


@dataclass(frozen=True)
class TlsInfo:
    hostname: str
    protocol: str
    not_after: str
    days_left: float
    subject: str
    issuer: str
    names: tuple[str, ...]
    hostname_matches: bool
    chain_error: str | None  # None when the chain verifies against the configured CA or the system store

    @property
    def version(self) -> float:
        """``TLSv1.3`` -> 1.3, comparable against a minimum."""
        return VERSIONS.get(self.protocol, 0.0)


def inspect_tls(url: str, timeout_s: float, hostname: str | None = None, ca_file: str | None = None) -> TlsInfo:
    """Two handshakes: one accepting anything (to read the certificate), one verifying the chain."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    hostname = hostname or host
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    der, protocol = _handshake(host, port, hostname, unverified, timeout_s)
    if der is None:
        raise ProbeError(f"TLS {host}:{port}: the server presented no certificate")
    verifying = ssl.create_default_context(cafile=ca_file)
    verifying.check_hostname = False
    try:
        _handshake(host, port, hostname, verifying, timeout_s)
        chain_error = None
    except ssl.SSLCertVerificationError as error:
        chain_error = error.verify_message or first_line(error)
    return _describe(der, hostname, protocol, chain_error)


def _handshake(host: str, port: int, hostname: str, context: ssl.SSLContext, timeout_s: float):
    """Connect and handshake within ``timeout_s`` in all: a server trickling its handshake is cut off."""
    started = time.monotonic()
    expired = None
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            server_name = None if _is_ip(hostname) else hostname
            left_s = timeout_s - (time.monotonic() - started)
            with cut_off_after(left_s, lambda: raw.shutdown(socket.SHUT_RDWR)) as expired:
                with context.wrap_socket(raw, server_hostname=server_name) as tls:
                    return tls.getpeercert(binary_form=True), tls.version()
    except ssl.SSLCertVerificationError:
        raise
    except OSError as error:
        if isinstance(error, TimeoutError) or (expired is not None and expired.is_set()):
            raise ProbeError(f"TLS {host}:{port}: no handshake within {timeout_s:g} s", unreachable=True) from None
        if isinstance(error, ssl.SSLError):
            raise ProbeError(f"TLS {host}:{port}: {first_line(error)}") from None
        raise ProbeError(f"TLS {host}:{port}: {error.strerror or first_line(error)}", unreachable=True) from None


def _describe(der: bytes, hostname: str, protocol: str, chain_error: str | None) -> TlsInfo:
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    not_after = certificate.not_valid_after_utc
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        names = tuple(a.value for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME))
    return TlsInfo(
        hostname=hostname,
        protocol=protocol,
        not_after=not_after.isoformat(),
        days_left=(not_after - datetime.now(timezone.utc)).total_seconds() / 86400,
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        names=names,
        hostname_matches=any(_name_matches(name, hostname) for name in names),
        chain_error=chain_error,
    )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _name_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125: exact (case-insensitive) or a wildcard for exactly the left-most label."""
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if _is_ip(hostname) or not pattern.startswith("*."):
        return pattern == hostname
    head, _, rest = hostname.partition(".")
    return bool(head) and rest == pattern[2:]
