"""Secret references (``${VAR}``) and the redactor that keeps their values out of every artifact.

>>> r = Redactor(); r.register("s3cr3t-token")
>>> r.redact("Authorization: Bearer s3cr3t-token")
'Authorization: Bearer ***'
>>> r.register("pa'ss<&>"); r.redact(json.dumps({"log": html.escape("token pa'ss<&>")}))
'{"log": "token ***"}'
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from urllib.parse import quote, quote_plus, unquote, urlsplit

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
MASK = "***"
MIN_SECRET_LENGTH = 4  # a shorter value cannot be masked without masking innocent digits and words: refused


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


def url_credentials(url: str) -> tuple[str, str] | None:
    """User and password in a URL's userinfo (``postgresql://bot:pw@host``), if it has a password."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    return (unquote(parts.username or ""), unquote(password)) if password else None


def basic_credentials(user: str, password: str) -> str:
    """What ``Authorization: Basic`` carries in place of the password: base64 of ``user:password``
    (UTF-8, as httpx encodes it, for ``auth`` and for a URL's userinfo alike)."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# Every way an output escapes a character: repr (quoted either way), JSON (ASCII or not), HTML
# (html.escape, Jinja's markupsafe), XML attributes (ElementTree), URLs. Each maps one character to a
# string independently of its neighbours, so a secret escaped by any chain of them is its characters
# each escaped by that chain: matching each character's images matches every such form.
ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda s: repr(s)[1:-1],
    lambda s: repr(s)[1:-1].replace("'", "\\'") if repr(s)[0] == '"' else repr(s)[1:-1],
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    html.escape,
    lambda s: html.escape(s, quote=False),
    lambda s: html.escape(s).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),  # markupsafe
    lambda s: html.escape(s, quote=False).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
    .replace("\t", "&#09;"),  # ElementTree attribute
    lambda s: quote(s, safe=""),
    quote_plus,
)
ESCAPE_DEPTH = 4  # pytest-html's log: repr, then HTML, then JSON, then markupsafe


@cache
def _char_pattern(char: str) -> str:
    """A regular expression for ``char`` as written and as every chain of up to ESCAPE_DEPTH escapes writes it."""
    forms, frontier = {char}, {char}
    for _ in range(ESCAPE_DEPTH):
        frontier = {escape(form) for form in frontier for escape in ESCAPES} - forms
        forms |= frontier
    if len(forms) == 1:
        return re.escape(char)
    return "(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + ")"


class Redactor:
    """Remembers secret values and replaces them, in every escaped form, with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._compiled: tuple[re.Pattern, re.Pattern] | None = None

    def register(self, value: str | None) -> None:
        """Mask ``value`` from now on; a value too short to mask safely is refused, never silently kept."""
        if not value or value in self._secrets:
            return
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"a secret shorter than {MIN_SECRET_LENGTH} characters cannot be redacted safely")
        self._secrets.add(value)
        self._compiled = None

    def _patterns(self) -> tuple[re.Pattern, re.Pattern] | None:
        """The text and bytes patterns, compiled once after the last ``register``."""
        if self._compiled is None and self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)  # a secret inside a longer one: the longer first
            pattern = "|".join("".join(_char_pattern(c) for c in secret) for secret in ordered)
            self._compiled = re.compile(pattern), re.compile(pattern.encode())
        return self._compiled

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def redact(self, text: str) -> str:
        if not self._secrets or not isinstance(text, str):
            return text
        return self._patterns()[0].sub(MASK, text)

    def redact_bytes(self, data: bytes) -> bytes:
        if not self._secrets:
            return data
        return self._patterns()[1].sub(MASK.encode(), data)

    def redact_deep(self, value):
        """Redact every string inside nested dicts, lists and tuples.

        A value whose JSON holds no secret in any form is given back as it is: one search at C speed in
        place of a walk through every string (most evidence holds none; every check's phases pass here).
        JSON writes each character of a string on its own, as one of the forms the pattern matches.
        """
        if not self._secrets:
            return value
        if isinstance(value, (dict, list, tuple)):
            try:
                if self._patterns()[0].search(json.dumps(value, ensure_ascii=False, default=str)) is None:
                    return value
            except (TypeError, ValueError):  # keys JSON cannot write, a cycle: the walk decides
                pass
        return self._walk(value)

    def _walk(self, value):
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._walk(v) for v in value)
        return value
