"""Ed25519 signatures on history records, so that rewriting the history needs the key, not just a text editor.

The environment names the private key (``history_signing_key``: a PEM or OpenSSH key file, or the key
itself from ``${VAR}``); each record then carries the key's OpenSSH public line (``public_key``), its
fingerprint (``signed_by``, as ``ssh-keygen -l`` prints it) and a ``signature`` of its hash. Verifying
against the key in a record only proves the records agree with each other: the verifier pins the key it
trusts (``history_public_key`` in the environment file, or ``history verify --public-key``).

>>> signer = load_signer("keys/history.pem", env_file)   # doctest: +SKIP
>>> signer.fingerprint                                    # doctest: +SKIP
'SHA256:O3B4Xh2oCm3b0b6xQ7Xb8dM1J3p2xgYt0r2M6q0v5yA'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

BEGIN = "-----BEGIN"


class Signer:
    """Signs record hashes; holds the private key and shows nothing of it."""

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self.public_key = openssh_line(key.public_key())
        self.fingerprint = fingerprint(self.public_key)

    def sign(self, record_hash: str) -> str:
        return base64.b64encode(self._key.sign(record_hash.encode())).decode()

    def __repr__(self) -> str:
        return f"Signer({self.fingerprint})"


def openssh_line(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def fingerprint(public_line: str) -> str:
    """``SHA256:<base64>`` of the key's OpenSSH blob, as ``ssh-keygen -lf key.pub`` prints it."""
    blob = base64.b64decode(public_line.split()[1], validate=True)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _key_bytes(value: str, env_file: Path | None) -> tuple[bytes, str]:
    """The key material of a setting that is either the key itself or a path (relative to the environment file)."""
    if value.lstrip().startswith(BEGIN):
        return value.strip().encode() + b"\n", "the key given"
    path = Path(value).expanduser()
    if not path.is_absolute() and env_file is not None:
        path = env_file.parent / path
    try:
        return path.read_bytes(), str(value)
    except OSError as error:
        raise ValueError(f"{value}: cannot read the key file ({error.strerror})") from None


def load_signer(value: str, env_file: Path | None) -> Signer:
    """The signing key named by ``history_signing_key``; a ValueError says what is wrong, never the key."""
    data, shown = _key_bytes(value, env_file)
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{shown}: not an unencrypted Ed25519 private key in PEM or OpenSSH format "
                         f"(make one with: ssh-keygen -t ed25519 -N '' -f history_key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{shown}: an {type(key).__name__}, not an Ed25519 key (make one with: ssh-keygen -t "
                         f"ed25519 -N '' -f history_key)")
    return Signer(key)


def pinned(values, env_file: Path | None) -> list[str]:
    """Fingerprints of the trusted keys: each value a fingerprint (``SHA256:...``), an OpenSSH public line
    (``ssh-ed25519 AAAA...``) or a public (or private) key file."""
    found = []
    for value in [values] if isinstance(values, str) else list(values or []):
        if not isinstance(value, str):
            raise ValueError(f"{value!r}: expected a fingerprint, an ssh-ed25519 line or a key file")
        if value.startswith("SHA256:"):
            found.append(value)
        elif value.startswith("ssh-ed25519 "):
            found.append(_checked_fingerprint(value))
        else:
            found.append(_file_fingerprint(value, env_file))
    return found


def _checked_fingerprint(line: str) -> str:
    try:
        return fingerprint(openssh_line(serialization.load_ssh_public_key(line.strip().encode())))
    except (ValueError, UnsupportedAlgorithm, IndexError, binascii.Error):
        raise ValueError(f"{line[:40]}...: not an ssh-ed25519 public key") from None


def _file_fingerprint(value: str, env_file: Path | None) -> str:
    data, shown = _key_bytes(value, env_file)
    text = data.decode(errors="replace").strip()
    if text.startswith("ssh-ed25519 "):
        return _checked_fingerprint(text)
    if "PRIVATE KEY" in text:
        return load_signer(value, env_file).fingerprint
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{shown}: not an Ed25519 public key (PEM or ssh-ed25519)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{shown}: not an Ed25519 public key")
    return fingerprint(openssh_line(key))


def record_key(record: dict) -> str | None:
    """The fingerprint of the key a record says signed it, or None when that key cannot be read."""
    try:
        return _checked_fingerprint(record["public_key"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None


def signature_holds(record: dict) -> bool:
    """True when ``signature`` is the Ed25519 signature of ``hash`` by the record's ``public_key``."""
    try:
        key = serialization.load_ssh_public_key(record["public_key"].encode())
        if not isinstance(key, Ed25519PublicKey):
            return False
        key.verify(base64.b64decode(record["signature"], validate=True), record["hash"].encode())
    except (KeyError, TypeError, AttributeError, ValueError, UnsupportedAlgorithm, InvalidSignature, binascii.Error):
        return False
    return True
