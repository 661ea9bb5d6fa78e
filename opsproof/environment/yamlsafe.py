"""Read the files an environment names without trusting them: bounded, decoded strictly, aliases bounded.

A hostile or broken file must cost a ConfigError (one line, exit 4), never a hang, a traceback or
gigabytes: ``/dev/zero`` as a ``vars_file``, a Latin-1 or UTF-16 file, a "billion laughs" alias bomb
(9 levels of 9 aliases: 387 M leaves from 432 bytes), ``&x [*x]``, 10 000 nested lists, ``? [a]: 1``.

PyYAML shares an aliased node instead of copying it, so loading a bomb is cheap; whatever walks the
result afterwards (the ${VAR} resolver, pydantic, json.dumps) pays for every expansion. So the
composed node graph is weighed with each alias counted in full, before anything walks it.

>>> load_yaml("a: &x [1, 2]\\nb: *x\\n", "env.yaml")
{'a': [1, 2], 'b': [1, 2]}
>>> load_yaml("a: &x [*x]\\n", "env.yaml")
Traceback (most recent call last):
...
opsproof.errors.ConfigError: env.yaml: a.0: a recursive alias (a list or mapping inside itself, line 1)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from opsproof.errors import ConfigError

MAX_FILE_BYTES = 4 * 1024 * 1024  # an environment, vars or waivers file: kilobytes in practice
MAX_NODES = 100_000  # alias-expanded nodes: a large real file has a few thousand
MAX_DEPTH = 64  # nesting of mappings and lists: real files stay under 10

_BASE = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


def read_bounded(path: Path, shown: str, key: str = "", limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is a ConfigError on ``key``.

    Checked before opening, so a FIFO or ``/dev/zero`` is refused without a read that never ends.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(shown, key, f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(shown, key, f"{path}: cannot read: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(shown, key, f"{path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(shown, key, f"{path} is not a regular file (a device, pipe or socket)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise ConfigError(shown, key, f"{path}: cannot read: {error.strerror}") from None
    if len(data) > limit:
        raise ConfigError(shown, key, f"{path} is larger than {limit // 1024} KiB")
    return data


def decode_text(data: bytes, shown: str, key: str = "", what: str = "file") -> str:
    """UTF-8 (a UTF-8 byte order mark allowed), and text: the line of the first byte that is not."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(shown, key, f"the {what} is UTF-16; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigError(shown, key, f"line {line}: the {what} is not UTF-8 (byte 0x{data[error.start]:02x}); "
                                      f"save it as UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ConfigError(shown, key, f"line {line}: the {what} holds a NUL byte: it is binary, not text")
    return text


def read_text(path: Path, shown: str, key: str = "", what: str = "file") -> str:
    return decode_text(read_bounded(path, shown, key), shown, key, what)


def load_yaml(text: str, shown: str, max_nodes: int = MAX_NODES):
    """``yaml.safe_load`` that refuses what would hang or crash whatever walks the result."""
    _check_events(text, shown)
    loader = _BASE(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, shown, max_nodes)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(shown, "", f"nested more than {MAX_DEPTH} levels deep (through aliases)") from None
    finally:
        loader.dispose()


def _check_events(text: str, shown: str) -> None:
    """Nesting depth from the event stream (no recursion, so 100 000 ``[`` cannot overflow the stack)."""
    depth = 0
    for event in yaml.parse(text, Loader=_BASE):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(shown, _line(event), f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_graph(root, shown: str, max_nodes: int) -> None:
    """Alias-expanded size at most ``max_nodes``, no recursive alias, keys that are plain scalars and given once,
    finite numbers.

    Linear in distinct nodes: an aliased node is weighed once and its weight reused.
    """
    weights: dict[int, int] = {}
    active: set[int] = set()

    def weigh(node, path: tuple) -> int:
        key = id(node)
        if key in weights:
            return weights[key]
        if key in active:
            raise ConfigError(shown, _where(path), f"a recursive alias (a list or mapping inside itself, {_line(node)})")
        active.add(key)
        if isinstance(node, SequenceNode):
            weight = 1 + sum(weigh(child, path + (str(i),)) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            weight, seen = 1, set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise ConfigError(shown, _where(path), f"a key must be plain text, not a list or mapping "
                                                           f"({_line(key_node)})")
                if key_node.value in seen:  # PyYAML would keep the last one silently
                    raise ConfigError(shown, _where(path + (key_node.value,)), f"duplicate key ({_line(key_node)})")
                seen.add(key_node.value)
                weight += 1 + weigh(value_node, path + (key_node.value,))
        else:
            if node.tag == "tag:yaml.org,2002:float" and node.value.lower().lstrip("+-") in (".inf", ".nan"):
                raise ConfigError(shown, _where(path), f"{node.value} is not a finite number ({_line(node)})")
            weight = 1
        active.discard(key)
        weights[key] = weight
        if weight > max_nodes:
            raise ConfigError(shown, _where(path), f"expands to more than {max_nodes} values through aliases "
                                                   f"(an alias bomb? {_line(node)})")
        return weight

    weigh(root, ())


def _where(path: tuple) -> str:
    return ".".join(path)


def _line(thing) -> str:
    mark = getattr(thing, "start_mark", None)
    return f"line {mark.line + 1}" if mark is not None else ""
