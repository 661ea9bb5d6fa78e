"""The sandbox's HTTPS listener: a generated CA, a certificate for 127.0.0.1/localhost, and a TLS front
that forwards GETs to the demo API, so TLS checks have a real server to judge.

Run as ``python -m opsproof.sandbox.https --port N --cert C --key K --upstream URL``. The certificate
helpers are used by the tests too, to make valid, expiring, expired, misnamed and untrusted certificates.
"""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes
    certificate: object  # cryptography.x509.Certificate
    key: object


def issue(common_name: str, names: list[str], issuer: Issued | None = None, days: float = 90,
          not_before_days: float = -1, ca: bool = False) -> Issued:
    """A certificate valid from ``now + not_before_days`` for ``days`` days; self-signed without ``issuer``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.now(timezone.utc) + timedelta(days=not_before_days)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.certificate.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days - not_before_days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), key_pem, certificate, key)


def _general_name(name: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_pair(issued: Issued, directory: Path, stem: str) -> tuple[Path, Path]:
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    return cert, key


def server_context(cert: Path, key: Path, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if max_version is not None:
        context.maximum_version = max_version
    return context


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        status, body, content_type = 200, b'{"status": "healthy", "tls": true}', "application/json"
        if self.upstream:
            try:
                with urllib.request.urlopen(self.upstream.rstrip("/") + self.path, timeout=5) as response:
                    status, body = response.status, response.read()
                    content_type = response.headers.get("Content-Type", content_type)
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
            except OSError:
                status, body = 502, b'{"error": "upstream unavailable"}'
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TlsServer(ThreadingHTTPServer):
    """An HTTPS server whose handshakes run per connection thread (a probe that hangs up costs nothing)."""

    daemon_threads = True

    def __init__(self, port: int, context: ssl.SSLContext, upstream: str = ""):
        handler = type("Handler", (_Forward,), {"upstream": upstream})
        super().__init__(("127.0.0.1", port), handler)
        self.context = context

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass


def serve_in_thread(context: ssl.SSLContext, upstream: str = "") -> TlsServer:
    """Start an HTTPS listener on a free loopback port in a daemon thread; ``shutdown()`` stops it."""
    server = TlsServer(0, context, upstream)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def component(box) -> None:
    """Sandbox component: CA and certificate in the state directory, the HTTPS front as a process."""
    from opsproof.sandbox.processes import free_port, wait_for_port

    directory = Path(box.state_dir) / "tls"
    directory.mkdir(exist_ok=True)
    ca = issue("opsproof sandbox CA", [], days=30, ca=True)
    ca_file, _ = write_pair(ca, directory, "ca")
    cert, key = write_pair(issue("localhost", ["localhost", "127.0.0.1"], issuer=ca, days=30), directory, "server")
    port = free_port()
    with open(directory / "https.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "opsproof.sandbox.https", "--port", str(port), "--cert", str(cert),
             "--key", str(key), "--upstream", box.variables["SANDBOX_API_URL"]],
            stdout=log, stderr=log, start_new_session=True, cwd=box.state_dir)
    box.add_process("https", process.pid, port)
    box.variables["SANDBOX_HTTPS_URL"] = f"https://127.0.0.1:{port}"
    box.variables["SANDBOX_CA_FILE"] = str(ca_file)
    wait_for_port(port, 20, "the HTTPS listener", process)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--upstream", default="")
    arguments = parser.parse_args()
    TlsServer(arguments.port, server_context(arguments.cert, arguments.key), arguments.upstream).serve_forever()
