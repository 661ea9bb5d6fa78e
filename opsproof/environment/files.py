"""Files and folders an environment names must be usable at load, not discovered missing by every check.

A missing ``ca_file`` was retried by every check of the README's HTTP example for the whole
``eventually`` window (over ten minutes); a missing or unwritable ``history_dir`` surfaced as a
traceback after the checks had run. Each is a ConfigError (exit 4) naming the key instead.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from opsproof.errors import ConfigError


def check_named_files(environment, env_path: Path, shown: str) -> None:
    for name, target in environment.targets("http").items():
        tls = getattr(target, "tls", None)
        if tls is not None and tls.ca_file:
            _ca_file(tls.ca_file, shown, f"http.{name}.tls.ca_file")
    if environment.history_dir:
        _history_dir(environment.history_dir, env_path, shown)


def _ca_file(ca_file: str, shown: str, key: str) -> None:
    """Read as the probes read it (relative to the working directory, as ``ssl`` does) and parsed as PEM."""
    path = Path(ca_file)
    if not os.path.exists(path):  # os.path: False, not an exception, for a name too long to look up
        raise ConfigError(shown, key, f"{ca_file}: no such file")
    if not os.path.isfile(path):
        raise ConfigError(shown, key, f"{ca_file} is not a file")
    if path.stat().st_size > 16 << 20:
        raise ConfigError(shown, key, f"{ca_file} is larger than 16 MiB: not a CA bundle")
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError, OSError) as error:
        raise ConfigError(shown, key, f"{ca_file} is not a PEM bundle of CA certificates ({error})") from None


def _history_dir(history_dir: str, env_path: Path, shown: str) -> None:
    """It must exist (a typo must not start a second, empty history) and take new files."""
    directory = Path(history_dir)
    if not directory.is_absolute():
        directory = env_path.parent / directory
    if not os.path.exists(directory):
        raise ConfigError(shown, "history_dir", f"{directory}: no such directory (create it, or fix the path)")
    if not os.path.isdir(directory):
        raise ConfigError(shown, "history_dir", f"{directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK) or _read_only(directory):
        raise ConfigError(shown, "history_dir", f"{directory} is not writable")


def _read_only(directory: Path) -> bool:
    """``os.access`` says yes to root on a read-only mount: ask the filesystem."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False
