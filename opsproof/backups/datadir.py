"""The physical drill's scratch directory: what it must never overlap (the source's data directory, the
stanza's pg1-path, a pgBackRest repository, the backups location) and when it is not the drill's to empty."""

from __future__ import annotations

import configparser
import glob
import os
import re
from pathlib import Path

MARKER = ".opsproof-drill"  # written first into data_dir: a directory without it is not ours to empty
_DEFAULT_CONFIGS = ("/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest.conf")


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _static_prefix(pattern: str) -> str:
    """The directory part of a glob before its first wildcard (``/b/base-*`` -> ``/b``)."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "/"


def pgbackrest_paths(settings) -> list[tuple[str, str]]:
    """The stanza's pg1-path and its posix repository paths, read from pgbackrest.conf."""
    config = configparser.ConfigParser(interpolation=None, strict=False)
    paths = [settings.config] if settings.config else list(_DEFAULT_CONFIGS)
    if not config.read(paths):
        return []
    found, repos = [], {}
    for section in ("global", settings.stanza):
        if not config.has_section(section):
            continue
        for key, value in config.items(section):
            if key == "pg1-path":
                found.append(("the stanza's pg1-path", value))
            match = re.fullmatch(r"repo(\d+)-(path|type)", key)
            if match:
                repos.setdefault(match.group(1), {})[match.group(2)] = value
    for number, repo in sorted(repos.items()):
        if repo.get("type", "posix") in ("posix", "cifs"):
            found.append((f"the repository path (repo{number}-path)", repo.get("path", "/var/lib/pgbackrest")))
    return found


def source_data_directory(environment, backup) -> str | None:
    """``SHOW data_directory`` on the source server; None when it does not answer or may not say."""
    import psycopg

    source = backup.source_in(environment)
    password = source.password.get_secret_value() if getattr(source, "password", None) else None
    try:
        with psycopg.connect(source.dsn, password=password, connect_timeout=5,
                             options="-c statement_timeout=5000") as conn:
            return conn.execute("SHOW data_directory").fetchone()[0]
    except (psycopg.Error, OSError):
        return None


def data_dir_refusal(backup, source_data_dir: str | None) -> str | None:
    """Why ``restore_into.data_dir`` must not be used (it overlaps what the drill must never touch)."""
    data_dir = os.path.realpath(backup.restore_into.data_dir)
    protected = [("the source's data_directory", source_data_dir)] if source_data_dir else []
    if backup.format == "pgbackrest":
        protected += pgbackrest_paths(backup.pgbackrest)
    if backup.location:
        protected.append(("the backups location", _static_prefix(backup.location)))
    where = f"{backup.where} restore_into.data_dir {backup.restore_into.data_dir}"
    for what, path in protected:
        path = os.path.realpath(path)
        if _inside(data_dir, path) or _inside(path, data_dir):
            relation = "is" if path == data_dir else "is inside" if _inside(data_dir, path) else "contains"
            return f"restore refused: {where} {relation} {what} {path}"
    if os.path.isdir(data_dir) and os.listdir(data_dir) and not os.path.exists(os.path.join(data_dir, MARKER)):
        return (f"restore refused: {where} is not empty and holds no {MARKER} marker: it is not a "
                f"previous drill's directory")
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        return f"restore refused: {where} is not a directory"
    return None
