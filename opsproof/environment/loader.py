"""Read an environment file: YAML without duplicate keys, ``${VAR}`` resolution, validation.

Every failure is a ``ConfigError`` naming the file and the key path, so the CLI and the pytest
plugin can print one line and exit 4 before anything runs or is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from opsproof.environment.model import KINDS, Environment
from opsproof.environment.web import Auth
from opsproof.errors import ConfigError
from opsproof.secrets import (
    MIN_SECRET_LENGTH,
    MissingVariable,
    basic_credentials,
    looks_secret,
    resolve,
    url_credentials,
)

# A ${VAR} resolved under one of these keys is a secret, whatever the variable's name: credentials,
# whatever goes into a request's headers or body (the server may echo it back), and anything under
# notify: (a webhook URL is its own credential).
# libyaml's parser where PyYAML was built with it (its wheels are): a 2000-target file took seconds
# in the pure-Python one, which is the fallback
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SECRET_KEYS = {"password", "token", "headers", "bearer_token", "basic_password", "request_headers", "json_body",
               "body", "notify"}


@dataclass(frozen=True)
class LoadedEnvironment:
    environment: Environment
    path: Path
    secrets: frozenset[str] = field(default_factory=frozenset, repr=False)


def _duplicate_key(node, key_path: tuple = ()):
    """The key path and line of the first key given twice in one mapping (PyYAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                return ".".join(key_path + (str(key),)), key_node.start_mark.line + 1
            seen.add(key)
            found = _duplicate_key(value_node, key_path + (str(key),))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_key(item, key_path + (str(index),))
            if found:
                return found
    return None


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


def load_environment(path: Path, variables: Mapping[str, str] | None = None) -> LoadedEnvironment:
    shown = _shown(path)
    raw = _read_yaml(path, shown)
    if not isinstance(raw, dict):
        raise ConfigError(shown, "", "an environment file must be a mapping of keys to values")
    merged = dict(_read_vars_file(path, raw.get("vars_file"), shown))
    merged.update(os.environ if variables is None else variables)
    secrets: dict[str, tuple[str, str | None]] = {}  # value -> (key path, ${VAR}): where a short one is refused
    resolved = _resolve_tree(raw, merged, secrets, shown, ())
    resolved.setdefault("name", path.stem)
    try:
        environment = Environment.model_validate(resolved, context={"file": path})  # for files it names
    except ValidationError as exc:
        raise _config_error(shown, exc) from None
    if environment.name != path.stem:
        raise ConfigError(shown, "name", f"{environment.name!r} does not match the file name {path.stem!r}")
    for value, where in _declared_secrets(environment).items():
        secrets.setdefault(value, where)
    for value, where in history_key_secrets(environment, path, shown).items():
        secrets.setdefault(value, where)
    _refuse_short(secrets, shown)
    return LoadedEnvironment(environment, path, frozenset(s for s in secrets if s))


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(shown, "", "no such environment file") from None
    except OSError as exc:
        raise ConfigError(shown, "", f"cannot read: {exc.strerror}") from None
    try:
        try:
            return _parse(text, SAFE_LOADER, shown)
        except yaml.YAMLError:  # said by the pure-Python parser, whose messages name more (an alias, a tab)
            return _parse(text, yaml.SafeLoader, shown)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(shown, line, f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(shown, "", f"not valid YAML: {exc}") from None


def _parse(text: str, loader_class, shown: str):
    """Parsed once: the node tree is checked for duplicate keys, then built into Python values."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        duplicate = _duplicate_key(node)
        if duplicate:
            raise ConfigError(shown, duplicate[0], f"duplicate key (line {duplicate[1]})")
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _read_vars_file(env_path: Path, vars_file, shown: str) -> dict[str, str]:
    """``vars_file``: KEY=VALUE lines (the sandbox writes its ports and passwords there)."""
    if vars_file is None:
        return {}
    if not isinstance(vars_file, str):
        raise ConfigError(shown, "vars_file", "must be a path")
    path = (env_path.parent / vars_file).resolve()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(
            shown, "vars_file", f"{vars_file} not found (for the sandbox: run `opsproof sandbox up`)"
        ) from None
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


def _config_error(shown: str, exc: ValidationError) -> ConfigError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    key_path = ".".join(str(part) for part in first["loc"])
    problem = first["msg"]
    if problem.startswith("Value error, "):
        problem = problem[len("Value error, "):]
    if first["type"] == "extra_forbidden":
        problem = "unknown key"
    if len(errors) > 1:
        problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(shown, key_path, problem)
