"""Structure: the plugin's modules and the record they share import without cycles; only public pytest API."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACYCLIC = ("fixtures", "opsproof.record", "opsproof.readiness")  # packages kept free of import cycles


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str) -> set[str]:
    """Every module a file imports, at the top or inside a function (a cycle there still fails at run time)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return found


def graph(prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    files = {_module(p): p for top in {p.split(".")[0] for p in prefixes} for p in (ROOT / top).rglob("*.py")}
    chosen = {name: path for name, path in files.items() if name.startswith(prefixes)}
    edges = {}
    for name, path in chosen.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges[name] = {m for m in imports(path, package) if m in chosen and m != name}
    return edges


def test_plugin_and_record_modules_have_no_import_cycle():
    try:
        list(graphlib.TopologicalSorter(graph(ACYCLIC)).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}", pytrace=False)


# pytest internals a plugin might reach for; pytest-rerunfailures' way of re-running an item is the one exception
PRIVATE_PYTEST = {"_report_sections", "_setupstate", "_fixturemanager", "_fixtureinfo", "_request", "_repr_failure_py",
                  "_obj", "_store"}
PRIVATE_ALLOWED = {"fixtures/eventually.py": {"_pytest", "_setupstate"},
                   "fixtures/rerun.py": {"_pytest"}}  # soak re-runs checks through it, and only it


def test_plugin_uses_only_public_pytest_api():
    found = []
    for path in sorted((ROOT / "fixtures").glob("*.py")):
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            used = None
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "_pytest":
                used = "_pytest"
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "_pytest" for a in node.names):
                used = "_pytest"
            elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_PYTEST:
                used = node.attr
            if used and used not in PRIVATE_ALLOWED.get(name, set()):
                found.append(f"{name}:{node.lineno}: {used}")
    assert found == []
