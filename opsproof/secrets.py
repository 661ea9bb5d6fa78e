"""Secret references (``${VAR}``) and the redactor that keeps their values out of every artifact.

>>> r = Redactor(); r.register("s3cr3t-token")
>>> r.redact("Authorization: Bearer s3cr3t-token")
'Authorization: Bearer ***'
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, unquote, urlsplit

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would scrub innocent digits and words


class MissingVariable(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def resolve(text: str, variables: Mapping[str, str], on_resolved: Callable[[str, str], None]) -> str:
    """Replace every ``${VAR}`` in ``text``; ``on_resolved(name, value)`` sees each substitution."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise MissingVariable(name)
        on_resolved(name, variables[name])
        return variables[name]

    return REFERENCE.sub(substitute, text)


def looks_secret(variable_name: str) -> bool:
    return bool(SECRET_NAME.search(variable_name))


def url_password(url: str) -> str | None:
    """The password in a URL's userinfo (``postgresql://bot:pw@host``), if any."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


class Redactor:
    """Remembers secret values and replaces them (and their URL-encoded forms) with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern | None = None

    def register(self, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        # as written, URL-encoded, and escaped the way HTML, XML and JSON reports write it
        forms = {value, quote(value, safe=""), quote(value), html.escape(value), html.escape(value, quote=False),
                 json.dumps(value)[1:-1]}
        if not forms <= self._secrets:
            self._secrets |= forms
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def redact(self, text: str) -> str:
        if self._pattern is None or not isinstance(text, str):
            return text
        return self._pattern.sub(MASK, text)

    def redact_bytes(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        pattern = re.compile(self._pattern.pattern.encode())
        return pattern.sub(MASK.encode(), data)

    def redact_deep(self, value):
        """Redact every string inside nested dicts, lists and tuples."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_deep(k): self.redact_deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact_deep(v) for v in value)
        return value
