"""Where the PostgreSQL server binaries are: the drills start servers, the sandbox too."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from opsproof.processes import require_binary


def bindir() -> Path:
    """Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin, off the PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    initdb = require_binary("initdb", "postgresql")
    return Path(os.path.realpath(initdb)).parent
