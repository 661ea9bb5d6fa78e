"""The physical drill's scratch directory: what it must never overlap (the data directory of the source and
of every other PostgreSQL target, the stanza's pg1-path, a pgBackRest repository, the backups location) and
when it is not the drill's to empty. Overlap is judged by device and inode (opsproof.filesystem), so a
symlink or a bind mount of a protected directory is that directory."""

from __future__ import annotations

import configparser
import glob
import os
import re
from pathlib import Path

from opsproof.filesystem import relation

MARKER = ".opsproof-drill"  # written first into data_dir: a directory without it is not ours to empty
_DEFAULT_CONFIGS = ("/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest.conf")


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


def data_directory(target) -> str | None:
    """``SHOW data_directory`` of a PostgreSQL target; None when it does not answer or may not say (it needs
    superuser or pg_read_all_settings)."""
    import psycopg

    password = target.password.get_secret_value() if target.password is not None else None
    try:
        with psycopg.connect(target.dsn, password=password, connect_timeout=max(2, round(target.connect_timeout_s)),
                             options="-c statement_timeout=5000") as conn:
            return conn.execute("SHOW data_directory").fetchone()[0]
    except (psycopg.Error, OSError):
        return None


def protected_paths(environment, backup) -> list[tuple[str, str]]:
    """(what, path) a physical drill of ``backup`` must never overlap."""
    source = backup.source_in(environment)
    found = []
    for target in sorted((environment.postgres or {}).values(), key=lambda target: target is not source):
        directory = data_directory(target)
        if directory:
            found.append(("the source's data_directory" if target is source else
                          f"the data_directory of {target.where}", directory))
    if backup.format == "pgbackrest":
        found += pgbackrest_paths(backup.pgbackrest)
    if backup.location:
        found.append(("the backups location", _static_prefix(backup.location)))
    return found


def data_dir_refusal(environment, backup) -> str | None:
    """Why ``restore_into.data_dir`` must not be used (it overlaps what the drill must never touch)."""
    data_dir = backup.restore_into.data_dir
    where = f"{backup.where} restore_into.data_dir {data_dir}"
    for what, path in protected_paths(environment, backup):
        overlap = relation(data_dir, path)
        if overlap:
            return f"restore refused: {where} {overlap} {what} {os.path.realpath(path)}"
    data_dir = os.path.realpath(data_dir)
    if os.path.isdir(data_dir) and os.listdir(data_dir) and not os.path.exists(os.path.join(data_dir, MARKER)):
        return (f"restore refused: {where} is not empty and holds no {MARKER} marker: it is not a "
                f"previous drill's directory")
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        return f"restore refused: {where} is not a directory"
    return None
