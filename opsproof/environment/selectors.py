"""Prometheus series selectors with label matchers: ``errors_total{status=~"5..", path!="/health"}``.

Parsed when the file loads, so an unparseable selector or regular expression is refused there; matched
by the metrics probe the way Prometheus matches: regular expressions anchored at both ends, a missing
label read as the empty string.

>>> selector = parse_selector('errors_total{status=~"5..", path!="/health"}')
>>> [(m.label, m.op, m.value) for m in selector.matchers]
[('status', '=~', '5..'), ('path', '!=', '/health')]
>>> selector.matches("errors_total", {"status": "503", "path": "/v1/wallets"})
True
>>> selector.matches("errors_total", {"status": "404"})
False
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r'\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s*$', re.DOTALL)
MATCHER = re.compile(r'\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*')
OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...] = ()

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return name == self.name and all(m.matches(labels) for m in self.matchers)

    def query(self) -> str:
        """The selector written back as PromQL (``ALERTS{severity="critical"}``)."""
        inner = ", ".join(f'{m.label}{m.op}"{_escape(m.value)}"' for m in self.matchers)
        return f"{self.name}{{{inner}}}" if inner else self.name


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """``status=~"5..", path!="/health"`` -> matchers; anything else raises ValueError saying where."""
    matchers, position = [], 0
    while text[position:].strip():
        found = MATCHER.match(text, position)
        if not found:
            raise ValueError(f"cannot read the label matcher at {text[position:].strip()[:30]!r}: write "
                             f'name="value", name!="value", name=~"regex" or name!~"regex"')
        value = re.sub(r"\\(.)", r"\1", found.group("value"))
        if found.group("op") in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"{found.group('label')}{found.group('op')}\"{value}\": not a regular expression: "
                                 f"{error}") from None
        matchers.append(Matcher(found.group("label"), found.group("op"), value))
        position = found.end()
        if position < len(text):
            if text[position] != ",":
                raise ValueError(f"expected ',' between label matchers at {text[position:][:30]!r}")
            position += 1
    return tuple(matchers)


def parse_selector(selector: str) -> Selector:
    """``errors_total{status=~"5.."}`` -> Selector; ValueError for anything Prometheus would not read."""
    found = NAME.fullmatch(selector)
    if not found:
        raise ValueError(f"{selector!r} is not a series selector like errors_total{{status=~\"5..\"}}")
    labels = found.group("labels")
    try:
        matchers = parse_matchers(labels) if labels and labels.strip() else ()
    except ValueError as error:
        raise ValueError(f"{selector!r}: {error}") from None
    return Selector(found.group("name"), matchers)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
