"""Read an environment file: YAML without duplicate keys, ``${VAR}`` resolution, validation.

Every failure is a ``ConfigError`` naming the file and the key path, so the CLI and the pytest
plugin can print one line and exit 4 before anything runs or is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from opsproof.environment import problems, yamlsafe
from opsproof.environment.files import check_named_files
from opsproof.environment.model import KINDS, Environment, model_for
from opsproof.environment.web import Auth
from opsproof.errors import ConfigError, Problem
from opsproof.secrets import (
    MIN_SECRET_LENGTH,
    REFERENCE,
    MissingVariable,
    basic_credentials,
    looks_secret,
    resolve,
    url_credentials,
)

# A ${VAR} resolved under one of these keys is a secret, whatever the variable's name: credentials,
# whatever goes into a request's headers or body (the server may echo it back), and anything under
# notify: (a webhook URL is its own credential).
SECRET_KEYS = {"password", "token", "headers", "bearer_token", "basic_password", "request_headers", "json_body",
               "body", "notify"}


@dataclass(frozen=True)
class LoadedEnvironment:
    environment: Environment
    path: Path
    secrets: frozenset[str] = field(default_factory=frozenset, repr=False)
    warnings: tuple[Problem, ...] = ()  # what loads but is likely not meant: a percentage written as a fraction
    placeholders: tuple[str, ...] = ()  # --no-secrets: the ${VAR}s that were unset and given placeholders


def find_environment(name_or_path: str, directory: Path) -> Path:
    """``staging`` -> ``<directory>/staging.yaml``; a path to a YAML file is taken as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        return candidate
    for suffix in (".yaml", ".yml"):
        path = directory / f"{name_or_path}{suffix}"
        if path.exists():
            return path
    return directory / f"{name_or_path}.yaml"


# --no-secrets: an unset ${VAR} that is a whole value takes the first of these its key accepts, so the
# structure around it is checked without the credential; inside a longer value it reads PLACEHOLDER.
PLACEHOLDER = "opsproof-placeholder"
CANDIDATES = (PLACEHOLDER, "1", "http://placeholder.invalid/", "postgres://placeholder@placeholder.invalid/placeholder",
              "redis://placeholder.invalid/0", "mysql://placeholder@placeholder.invalid/placeholder", "/placeholder",
              "s3://placeholder-bucket/placeholder", "placeholder", "1s")


PORT_REFERENCE = re.compile(r":\$\{([A-Za-z_][A-Za-z0-9_]*)\}(?=[/?]|$)")


class _Placeholders(dict):
    """The variables, with a placeholder for every name that is not set (``opsproof validate --no-secrets``)."""

    def __contains__(self, name) -> bool:
        return True

    def __missing__(self, name: str) -> str:
        return PLACEHOLDER


def load_environment(path: Path, variables: Mapping[str, str] | None = None,
                     placeholders: bool = False) -> LoadedEnvironment:
    """The validated environment; ``placeholders``: unset ${VAR}s (and a missing vars_file) get placeholders,
    for checking a file's structure where its secrets are not (CI)."""
    shown = _shown(path)
    raw = _read_yaml(path, shown)
    if not isinstance(raw, dict):
        raise ConfigError(shown, "", "an environment file must be a mapping of keys to values")
    try:
        merged = dict(_read_vars_file(path, raw.get("vars_file"), shown))
    except ConfigError:
        if not placeholders:
            raise
        merged = {}
    merged.update(os.environ if variables is None else variables)
    unset = {name for name in _references(raw) if name not in merged} if placeholders else set()
    if placeholders:
        merged = _Placeholders(merged)
        raw = _ports_placed(raw, unset)
    secrets: dict[str, tuple[str, str | None]] = {}  # value -> (key path, ${VAR}): where a short one is refused
    resolved = _resolve_tree(raw, merged, secrets, shown, ())
    resolved.setdefault("name", path.stem)
    whole = {where: name for where, name in _whole_references(raw) if name in unset}
    environment = _validated(resolved, path, shown, whole)
    if environment.name != path.stem:
        raise ConfigError(shown, "name", f"{environment.name!r} does not match the file name {path.stem!r}")
    placed = {".".join(where) for where, names in _references_at(raw) if names & unset}
    check_named_files(environment, path, shown, placed)  # ca_file, history_dir: usable now, not at every check
    for value, where in _declared_secrets(environment).items():
        secrets.setdefault(value, where)
    for value, where in history_key_secrets(environment, path, shown).items():
        secrets.setdefault(value, where)
    if placeholders:  # a placeholder that stands for a secret is no secret, whatever its length
        secrets = {value: where for value, where in secrets.items() if value not in CANDIDATES}
    _refuse_short(secrets, shown)
    warnings = problems.fraction_warnings(raw, None)
    if warnings:
        warnings = problems.fraction_warnings(raw, _yaml_nodes(path))
    return LoadedEnvironment(environment, path, frozenset(s for s in secrets if s),
                             tuple(warnings), tuple(sorted(unset)))


def _validated(resolved: dict, path: Path, shown: str, whole: dict[tuple, str]):
    """The Environment, or every problem at once. A whole-value placeholder a key refuses tries the next
    candidate (a URL, a number...); what no candidate fits is said as unset, not as wrong."""
    choice = dict.fromkeys(whole, 0)
    model = model_for(frozenset(resolved) & frozenset(KINDS) if isinstance(resolved, dict) else frozenset(KINDS))
    while True:
        tree = resolved
        for where, index in choice.items():  # "${API_URL}/status" resolved PLACEHOLDER/status: the prefix varies
            tree = _replaced(tree, where, CANDIDATES[index] + _at(resolved, where)[len(PLACEHOLDER):])
        try:
            return model.model_validate(tree, context={"file": path})  # for files it names
        except ValidationError as exc:
            found = problems.from_validation(exc, model, None)
        refused = {where for where in choice if any(_under(p.key_path, where) for p in found)}
        moving = [where for where in refused if choice[where] + 1 < len(CANDIDATES)]
        if not moving:
            nodes = _yaml_nodes(path)
            said = []
            for p in found:
                held = next((w for w in refused if _under(p.key_path, w)), None)
                problem = p.problem if held is None else f"{p.problem} (from ${{{whole[held]}}}, unset: set it to " \
                                                         f"check this key)"
                said.append(Problem(p.key_path, problem, problems.line_of(nodes, p.key_path)))
            raise ConfigError.of(shown, said) from None
        for where in moving:
            choice[where] += 1


def _under(key_path: str, where: tuple) -> bool:
    joined = ".".join(where)
    return key_path == joined or key_path.startswith(joined + ".")


def _at(tree, where: tuple):
    for key in where:
        tree = tree[next(k for k in tree if str(k) == key)] if isinstance(tree, dict) else tree[int(key)]
    return tree


def _replaced(tree, where: tuple, value):
    if not where:
        return value
    key, rest = where[0], where[1:]
    if isinstance(tree, dict):
        key = next(k for k in tree if str(k) == key)  # YAML may give a key as a number or true
        return {**tree, key: _replaced(tree[key], rest, value)}
    copy = list(tree)
    copy[int(key)] = _replaced(copy[int(key)], rest, value)
    return copy


def _ports_placed(node, unset: set[str]):
    """An unset ${VAR} in a URL's port place (``host:${PG_PORT}/db``) reads 1, so the URL still parses."""
    if isinstance(node, dict):
        return {key: _ports_placed(value, unset) for key, value in node.items()}
    if isinstance(node, list):
        return [_ports_placed(value, unset) for value in node]
    if isinstance(node, str):
        return PORT_REFERENCE.sub(lambda m: ":1" if m.group(1) in unset else m.group(0), node)
    return node


def _references(node):
    """Every ${VAR} name the raw file refers to."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)
    elif isinstance(node, str):
        yield from REFERENCE.findall(node)


def _strings_at(node, where: tuple = ()):
    """(key path, value) of each string in the raw file."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings_at(value, where + (str(key),))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings_at(value, where + (str(index),))
    elif isinstance(node, str):
        yield where, node


def _references_at(node):
    """(key path, set of ${VAR} names) of each string value that refers to a variable."""
    return ((where, set(REFERENCE.findall(text))) for where, text in _strings_at(node) if "${" in text)


def _whole_references(node):
    """(key path, name) of each value that starts with a ${VAR} (``${PG_DSN}``, ``${API_URL}/status``)."""
    for where, text in _strings_at(node):
        match = REFERENCE.match(text)
        if match:
            yield where, match.group(1)


def environment_settings(path: Path) -> dict:
    """Name, tier and where history and waivers live, without resolving ${VAR}s or validating targets.

    History and readiness read finished runs: they must work when the sandbox (and its vars file) is gone.
    """
    shown = _shown(path)
    raw = _read_yaml(path, shown)
    if not isinstance(raw, dict):
        raise ConfigError(shown, "", "an environment file must be a mapping of keys to values")
    settings = {key: raw.get(key) for key in ("name", "tier", "history_dir", "waivers_file", "description")}
    settings["name"] = settings["name"] or path.stem
    for key, value in settings.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(shown, key, "must be text")
    settings.update({key: raw.get(key) for key in ("history_public_key", "history_signing_key", "evidence_store")})
    return settings


def resolved_section(path: Path, key: str):
    """One top-level section of an environment file with its ${VAR}s resolved (from the process environment, then
    ``vars_file`` when it can be read): the evidence store's credentials, without every target's secrets."""
    shown = _shown(path)
    raw = _read_yaml(path, shown)
    if not isinstance(raw, dict) or key not in raw:
        return None
    try:
        merged = dict(_read_vars_file(path, raw.get("vars_file"), shown))
    except ConfigError:
        merged = {}  # a vars file that is gone (the sandbox is down) leaves the process environment
    merged.update(os.environ)
    return _resolve_tree(raw[key], merged, {}, shown, (key,))


def history_key_secrets(environment: Environment, path: Path, shown: str) -> dict:
    """Refuse a signing key or pinned key that cannot be read; the key itself, when given inline, is a secret."""
    if not (environment.history_signing_key or environment.history_public_key):
        return {}
    from opsproof.history import signing  # cryptography is imported only where a key is named

    for key, check in (("history_signing_key", signing.load_signer), ("history_public_key", signing.pinned)):
        value = getattr(environment, key)
        if value:
            try:
                check(value, path)
            except ValueError as error:
                raise ConfigError(shown, key, str(error)) from None
    key = environment.history_signing_key
    return {key: ("history_signing_key", None)} if key and key.lstrip().startswith(signing.BEGIN) else {}


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, shown: str):
    if not os.path.lexists(path):  # os.path: False, not an exception, for a name too long to look up
        raise ConfigError(shown, "", "no such environment file")
    text = yamlsafe.read_text(path, shown)  # bounded, strict UTF-8: see yamlsafe
    try:
        return yamlsafe.load_yaml(text, shown)  # aliases, depth, duplicate and complex keys checked first
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(shown, line, f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(shown, "", f"not valid YAML: {exc}") from None


def _read_vars_file(env_path: Path, vars_file, shown: str) -> dict[str, str]:
    """``vars_file``: KEY=VALUE lines (the sandbox writes its ports and passwords there)."""
    if vars_file is None:
        return {}
    if not isinstance(vars_file, str):
        raise ConfigError(shown, "vars_file", "must be a path")
    path = (env_path.parent / vars_file).resolve()
    if not os.path.exists(path):
        raise ConfigError(shown, "vars_file", f"{vars_file} not found (for the sandbox: run `opsproof sandbox up`)")
    lines = yamlsafe.read_text(path, shown, "vars_file", "vars file").splitlines()  # not /dev/zero, a directory, binary
    variables = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(shown, "vars_file", f"{vars_file} line {number}: expected KEY=VALUE")
        variables[key.strip()] = value.strip()
    return variables


def _resolve_tree(node, variables, secrets: dict, shown: str, key_path: tuple):
    if isinstance(node, dict):
        return {k: _resolve_tree(v, variables, secrets, shown, key_path + (str(k),)) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_tree(v, variables, secrets, shown, key_path + (str(i),)) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    in_secret_field = bool(SECRET_KEYS & set(key_path))

    def remember(name: str, value: str) -> None:
        if in_secret_field or looks_secret(name):
            secrets.setdefault(value, (".".join(key_path), name))

    try:
        return resolve(node, variables, remember)
    except MissingVariable as missing:
        raise ConfigError(
            shown, ".".join(key_path), f"${{{missing.name}}} is not set in the process environment"
        ) from None


def _declared_secrets(environment: Environment) -> dict:
    """Values in secret-typed fields and passwords inside URLs, even when written literally, and what is
    sent in their place: ``Authorization: Basic`` carries base64 of user:password, from ``auth`` or from a
    URL's userinfo (httpx sends both). Value -> (key path, None)."""
    found: dict = {}

    def walk(value, key_path: str) -> None:
        if isinstance(value, SecretStr):
            if not _plain_header(key_path):
                found.setdefault(value.get_secret_value(), (key_path, None))
        elif isinstance(value, Auth) and value.basic_user is not None:
            found.setdefault(value.basic_password.get_secret_value(), (f"{key_path}.basic_password", None))
            found.setdefault(basic_credentials(value.basic_user, value.basic_password.get_secret_value()),
                             (key_path, None))
        elif isinstance(value, BaseModel):
            for name, info in type(value).model_fields.items():
                walk(getattr(value, name), f"{key_path}.{info.alias or name}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{key_path}.{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{key_path}.{index}")
        elif isinstance(value, str) and "://" in value and url_credentials(value):
            user, password = url_credentials(value)
            found.setdefault(password, (key_path, None))
            found.setdefault(basic_credentials(user, password), (key_path, None))

    for kind in KINDS:
        for name, target in environment.targets(kind).items():
            walk(target, f"{kind}.{name}")
    walk(environment.custom, "custom")
    walk(environment.notify, "notify")
    walk(environment.evidence_store, "evidence_store")
    return found


def _plain_header(key_path: str) -> bool:
    """A header written literally whose name says nothing of credentials (``Accept: */*``, ``X-Env: dev``):
    not a secret. A header from a ``${VAR}`` is registered when it is resolved, whatever its name."""
    parent, _, name = key_path.rpartition(".")
    return parent.endswith(".headers") and not looks_secret(name) and name.lower() not in ("cookie", "set-cookie")


def _refuse_short(secrets: dict, shown: str) -> None:
    """A secret too short to mask without masking ordinary text is an error, not a silent leak."""
    for value, (key_path, variable) in secrets.items():
        if 0 < len(value) < MIN_SECRET_LENGTH:
            holder = f"${{{variable}}} holds" if variable else "holds"
            raise ConfigError(shown, key_path, f"{holder} a secret of {len(value)} character{'s' * (len(value) > 1)}; "
                                               f"secrets shorter than {MIN_SECRET_LENGTH} characters are refused, "
                                               f"since they cannot be redacted without masking ordinary text")


def _yaml_nodes(path: Path):
    """The file's YAML nodes, for the line of each problem (read again: only when there is something to say)."""
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
