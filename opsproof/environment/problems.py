"""Every problem of an environment file at once, in words a person acts on: key path, YAML line, "did you mean".

Pydantic reports each field error with its ``loc``; this module turns those into ``Problem``s, finds the
line of each key path in the file's YAML nodes, suggests the key meant when one is unknown (difflib),
says what a pattern means instead of printing the regex, and collects warnings (a percentage written
as a fraction) that do not stop a run.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable

import yaml
from pydantic import BaseModel, ValidationError

from opsproof.errors import Problem

# A constraint's regex -> what it asks for, in the words of the file's reader.
PATTERNS = {
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$": "a name of letters, digits, '.', '_' and '-' (up to 63, starting "
                                          "with a letter or digit)",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "a name of letters, digits, '.', '_' and '-', starting with a letter or digit",
    r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$": "a Kubernetes name: lower case letters, digits, '-' and '.', "
                                               "starting and ending with a letter or digit",
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$": "a Kubernetes name: lower case letters, digits and '-' (up to 63), "
                                            "starting and ending with a letter or digit",
    r"^[a-z][a-z0-9_]*\.[A-Za-z0-9][A-Za-z0-9_.-]*$": "a target of this file written kind.name, like postgres.main",
    r"^[a-z][a-z0-9_]{0,62}$": "lower case letters, digits and '_', starting with a letter",
    r"^[a-z_][a-z0-9_]{0,62}$": "lower case letters, digits and '_', starting with a letter or '_'",
    r"^[a-z][a-z0-9_]*$": "lower case letters, digits and '_', starting with a letter",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "a variable name: letters, digits and '_', not starting with a digit",
    r"^https?://\S+$": "an http:// or https:// URL",
    r"^postgres(ql)?://\S+$": "a postgres:// or postgresql:// URL",
    r"^rediss?://\S+$": "a redis:// or rediss:// URL",
    r"^(postgres(ql)?|mysql)://\S+/[A-Za-z0-9_]+$": "a postgres:// or mysql:// URL ending in /database_name",
    r"^/": "an absolute path (starting with /)",
    r"^/\S*$": "an absolute path (starting with /, no spaces)",
    r"^(local://|ssh://\S+|paramiko://\S+)$": "local://, ssh://user@host or paramiko://user@host",
    r"^(tcp|udp)://\S+:\d+$": "tcp://host:port or udp://host:port",
    r"^0?[0-7]{3,4}$": "an octal file mode like 0640",
    r"^[A-Za-z0-9_.-]+$": "letters, digits, '.', '_' and '-'",
    r"^(postgres|mysql|redis|kubernetes|host)\.[A-Za-z0-9_.-]+$": "a postgres, mysql, redis, kubernetes or host "
                                                                  "target, like postgres.main",
}
FRACTION_HINT = "is read as a percentage; if you meant {pct:g} %, write {pct:g}"


def from_validation(exc: ValidationError, root: type[BaseModel], nodes) -> list[Problem]:
    """One Problem per pydantic error (a cross-section rule may carry several), each with its YAML line."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            problems += [_placed(p, nodes) for p in cause.problems]
            continue
        loc = tuple(str(part) for part in error["loc"])
        problem = _words(error, root, loc)
        key_path = ".".join(loc)
        if not loc:  # a rule across sections names its key path at the start of its message
            key_path, problem = split_key_path(problem)
        problems.append(_placed(Problem(key_path, problem), nodes))
    return _unique(problems)


class Problems(ValueError):
    """Several problems found by one rule across sections (every kind's ``check_section``), reported together."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.key_path}: {p.problem}" if p.key_path else p.problem for p in problems))
        self.problems = problems


def split_key_path(message: str) -> tuple[str, str]:
    """``"backups.x.of: postgres.y is not a target"`` -> ("backups.x.of", "postgres.y is not a target")."""
    match = re.match(r"^([A-Za-z0-9_][\w.\-\[\]]*): (.*)$", message, re.S)
    if match and "." in match.group(1):
        return match.group(1), match.group(2)
    return "", message


def line_of(nodes, key_path: str) -> int | None:
    """The 1-based line of the deepest key of ``key_path`` present in the composed YAML (None: no nodes)."""
    if nodes is None:
        return None
    node, line = nodes, nodes.start_mark.line + 1
    for part in key_path.split(".") if key_path else ():
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if str(k.value) == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):  # a named list entry: api in requests.api
            found = next((item for item in node.value if isinstance(item, yaml.MappingNode) and any(
                k.value == "name" and getattr(v, "value", None) == part for k, v in item.value)), None)
            if found is None:
                break
            node, line = found, found.start_mark.line + 1
        else:
            break
    return line


def fraction_warnings(raw, nodes) -> list[Problem]:
    """A percentage between 0 and 1 (``memory_pct: {warn: 0.8}``) is most likely a fraction meant as 80 %."""
    found: list[Problem] = []

    def walk(node, path: tuple, percent: bool) -> None:
        if isinstance(node, dict):
            custom_pct = len(path) == 2 and path[0] == "custom" and str(path[1]).endswith("_pct")
            for key, value in node.items():
                key = str(key)
                limit = key in ("warn", "crit", "max", "min")
                walk(value, path + (key,), key.endswith("_pct") or ((percent or custom_pct) and limit))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, path + (str(index),), False)
        elif percent and isinstance(node, (int, float)) and not isinstance(node, bool) and 0 < node < 1:
            key_path = ".".join(path)
            hint = f"{node:g} {FRACTION_HINT.format(pct=node * 100)}"
            found.append(Problem(key_path, hint, line_of(nodes, key_path)))

    walk(raw, (), False)
    return found


def _placed(problem: Problem, nodes) -> Problem:
    return problem if problem.line is not None else Problem(problem.key_path, problem.problem,
                                                            line_of(nodes, problem.key_path))


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    seen, kept = set(), []
    for problem in problems:
        if (problem.key_path, problem.problem) not in seen:
            seen.add((problem.key_path, problem.problem))
            kept.append(problem)
    return kept


def _words(error: dict, root: type[BaseModel], loc: tuple[str, ...]) -> str:
    kind, problem, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if problem.startswith("Value error, "):
        problem = problem[len("Value error, "):]
    if kind == "extra_forbidden":
        known = _keys_at(root, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        return f"unknown key; did you mean {close[0]}?" if close else "unknown key"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERNS:
        return f"must be {PATTERNS[ctx['pattern']]}"
    return problem


def _keys_at(root: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The keys the model at ``loc`` takes (field names and aliases), following dicts, lists and unions."""
    types_here: list = [root]
    for part in loc:
        following = []
        for annotation in types_here:
            for model in _models(annotation):
                field = model.model_fields.get(part) or next(
                    (f for f in model.model_fields.values() if f.alias == part), None)
                if field is not None:
                    following.append(field.annotation)
            for container in _containers(annotation):
                following.append(container)
        types_here = following
    keys: list[str] = []
    for annotation in types_here:
        for model in _models(annotation):
            keys += [f.alias or name for name, f in model.model_fields.items()]
    return keys


def _unwrapped(annotation) -> list:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrapped(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrapped(arg)]
    return [annotation]


def _models(annotation) -> list[type[BaseModel]]:
    return [t for t in _unwrapped(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]


def _containers(annotation) -> list:
    """What a dict's value or a list's item is: the next ``loc`` part is its key or index."""
    items = []
    for t in _unwrapped(annotation):
        origin = typing.get_origin(t)
        if origin is dict:
            items.append(typing.get_args(t)[1])
        elif origin is list:
            items.append(typing.get_args(t)[0])
    return items
