"""Where a path really is: its device and inode, so that a symlink, a bind mount or another spelling of a
directory is recognised as that directory. Path text cannot: a bind mount shows the same inode at two paths.

>>> relation("/mnt/pgbind/drill", "/var/lib/postgresql/15/main")   # doctest: +SKIP
'is inside'
"""

from __future__ import annotations

import os
from pathlib import Path


def file_id(path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` (symlinks followed), or None when it does not exist or cannot be read."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return found.st_dev, found.st_ino


def lineage(path) -> list[tuple[int, int]]:
    """(device, inode) of ``path`` and of each directory above it; a path that does not exist yet starts at
    its nearest existing ancestor."""
    path = Path(os.path.realpath(path))
    return [found for found in map(file_id, (path, *path.parents)) if found is not None]


def _text_inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def relation(path, other) -> str | None:
    """``"is"``, ``"is inside"`` or ``"contains"`` when ``path`` and ``other`` are the same directory or one
    lies within the other on disk; by resolved path text where one does not exist; None when apart."""
    mine, theirs = file_id(path), file_id(other)
    if mine is not None and mine == theirs:
        return "is"
    if theirs is not None and theirs in lineage(path):
        return "is inside"
    if mine is not None and mine in lineage(other):
        return "contains"
    text, other_text = os.path.realpath(path), os.path.realpath(other)
    if text == other_text:
        return "is"
    if _text_inside(text, other_text):
        return "is inside"
    return "contains" if _text_inside(other_text, text) else None


class Within:
    """Answers "does this path lie in ``root``?" for many paths (every open file of every process), by
    device and inode of each ancestor, remembering the answer per directory; after ``root`` is removed,
    by path text (a process's ``cwd`` then reads ``/root/x (deleted)``)."""

    def __init__(self, root):
        self.text = os.path.realpath(root)
        self.root = file_id(self.text)
        self._known: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        path = path.removesuffix(" (deleted)")
        if not path.startswith("/"):
            return False  # socket:[123], pipe:[456], anon_inode:...
        if _text_inside(path, self.text):
            return True
        if self.root is None:
            return False
        chain = []
        for candidate in (path, *map(str, Path(path).parents)):
            if candidate in self._known:
                answer = self._known[candidate]
                break
            chain.append(candidate)
            if file_id(candidate) == self.root:
                answer = True
                break
        else:
            answer = False
        for candidate in chain:
            self._known[candidate] = answer
        return answer
