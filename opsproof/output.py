"""Reading a command's output: JSON (the whole output, else its last line, after a banner), a field at a
dotted path, a number by regular expression or JSON path.

>>> field({"workers": [{"state": "running"}]}, "workers.0.state")
'running'
>>> number("pending jobs: 42\\n", regex=r"pending jobs: (\\d+)")
42.0
>>> number('{"queue": {"pending": 7}}', json_path="queue.pending")
7.0
"""

from __future__ import annotations

import json
import re

MISSING = "(missing)"


def last_line(text: str, chars: int = 200) -> str:
    """The last non-empty line of an output, cut at ``chars`` (``""`` when it printed nothing)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:chars] if lines else ""


def parse_json(text: str):
    """The output as JSON; a banner before it is skipped by reading its last line. None when neither parses."""
    for candidate in (text, (text.strip().splitlines() or [""])[-1]):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def field(value, dotted_path: str):
    """``a.b.0.c`` into dicts and lists; ``MISSING`` where the path leads nowhere."""
    for part in dotted_path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def number(text: str, regex: str | None = None, json_path: str | None = None) -> float | None:
    """The number a regex's group or a JSON path finds; None when there is none, or it is not a number."""
    if regex is not None:
        found = re.search(regex, text, re.MULTILINE)
        raw = found.group(1) if found else None
    else:
        raw = field(parse_json(text), json_path)
    if isinstance(raw, bool) or raw is None or raw == MISSING:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None
