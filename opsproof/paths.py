"""Where the project lives: the clone holding pyproject.toml, environments/ and checks/."""

from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    """The clone this package was installed from (editable install), else the working directory."""
    candidate = Path(__file__).resolve().parent.parent
    if (candidate / "pyproject.toml").exists() and (candidate / "checks").is_dir():
        return candidate
    return Path.cwd()
