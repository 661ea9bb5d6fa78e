"""The kind registry: each entry agrees with its model at import, and opsproof/ and fixtures/ import no cycle."""

from __future__ import annotations

import graphlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import grimp
import pytest
from conftest import read_results
from pydantic import Field

from opsproof.environment import Environment
from opsproof.environment.base import Model, Target
from opsproof.environment.kinds import KINDS, Items, Kind, _checked
from opsproof.probes import factory


def import_cycle(*packages: str) -> list[str] | None:
    """The first import cycle among ``packages``' modules, each step with its line, or None.

    Imports inside functions count: they run too, only later, and a cycle through them still means
    neither module can be read or changed alone. Imports under ``TYPE_CHECKING`` never run: not counted.
    """
    graph = grimp.build_graph(*packages, cache_dir=None, exclude_type_checking_imports=True)
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as error:
        cycle = list(reversed(error.args[1]))  # graphlib lists it against the import direction
        steps = []
        for importer, imported in zip(cycle, cycle[1:]):
            line = graph.get_import_details(importer=importer, imported=imported)[0]
            steps.append(f"{importer} imports {imported} (line {line['line_number']}: {line['line_contents']})")
        return steps
    return None


def test_opsproof_and_fixtures_import_no_cycle():
    cycle = import_cycle("opsproof", "fixtures")
    assert cycle is None, "import cycle:\n" + "\n".join(cycle)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path, monkeypatch):
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def later():\n    from cyclic.a import thing\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic.d import x\n")
    (package / "d.py").write_text("from cyclic import c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycle("cyclic") in (
        ["cyclic.a imports cyclic.b (line 1: from cyclic import b)",
         "cyclic.b imports cyclic.a (line 2: from cyclic.a import thing)"],
        ["cyclic.b imports cyclic.a (line 2: from cyclic.a import thing)",
         "cyclic.a imports cyclic.b (line 1: from cyclic import b)"],
    )  # c <-> d only under TYPE_CHECKING: not a cycle


# --- the registry -----------------------------------------------------------------------------------

def test_every_kind_is_a_section_a_probe_factory_and_fixtures():
    assert [name for name in Environment.model_fields if name in KINDS] == list(KINDS)
    for name, kind in KINDS.items():
        assert Environment.model_fields[name].annotation.__args__[1] is kind.model
        assert callable(factory(kind.probe)), kind.probe


class _Widget(Model):
    name: str


class _GadgetTarget(Target):
    kind: ClassVar[str] = "gadget"
    widgets: list[_Widget] = Field(default_factory=list)
    limits: dict[str, float] = Field(default_factory=dict)
    label: str = ""


@pytest.mark.parametrize("kinds, message", [
    ((Kind(_GadgetTarget, "opsproof.gadget:open", (Items("gadget_widget", "widget"),)),),
     "opsproof kinds: gadget: items gadget_widget: _GadgetTarget has no list or mapping field 'widget'"),
    ((Kind(_GadgetTarget, "opsproof.gadget:open", (Items("gadget_label", "label"),)),),
     "opsproof kinds: gadget: items gadget_label: _GadgetTarget has no list or mapping field 'label'"),
    ((Kind(_GadgetTarget, "opsproof.gadget:open"), Kind(_GadgetTarget, "opsproof.other:open")),
     "opsproof kinds: _GadgetTarget and _GadgetTarget both claim kind 'gadget'"),
    ((Kind(_GadgetTarget, "opsproof.gadget"),), "opsproof kinds: gadget: probe 'opsproof.gadget' is not 'module:function'"),
    ((Kind(_GadgetTarget, "opsproof.gadget:open", (Items("postgres_invariant", "limits"),)), KINDS["postgres"]),
     "opsproof kinds: fixture 'postgres_invariant' is claimed by gadget.limits and by postgres.invariants"),
    ((Kind(_GadgetTarget, "opsproof.gadget:open", (Items("gadget_target", "limits"),)),),
     "opsproof kinds: fixture 'gadget_target' is claimed by kind gadget and by gadget.limits"),
    ((Kind(_Widget, "opsproof.gadget:open"),), "opsproof kinds: _Widget is not a Target model"),
])
def test_an_entry_that_disagrees_fails_at_import_saying_what(kinds, message):
    with pytest.raises(TypeError) as raised:
        _checked(kinds)
    assert str(raised.value) == message


def test_lists_give_one_test_per_entry_and_mappings_one_per_name():
    gadget = _checked((Kind(_GadgetTarget, "opsproof.gadget:open",
                            (Items("gadget_widget", "widgets"), Items("gadget_limit", "limits"))),))["gadget"]
    assert [gadget.listed(items) for items in gadget.items] == [True, False]


def test_a_kind_named_like_an_environment_key_is_refused(monkeypatch):
    from opsproof.environment import model

    class Tier(Target):
        kind: ClassVar[str] = "tier"

    monkeypatch.setattr(model, "KINDS", {**KINDS, "tier": Kind(Tier, "opsproof.tier:open")})
    with pytest.raises(TypeError, match="opsproof kinds: tier is an environment key, not a kind name"):
        model._sections()


# --- a new kind is its own files plus one registry line ----------------------------------------------

NEW_KIND_FILES = {
    "opsproof/environment/heartbeat.py": '''
        """Heartbeat files a cron job touches after each run: each must be younger than its max_age."""

        from typing import ClassVar

        from pydantic import Field

        from opsproof.environment.base import Duration, Model, Target


        class Job(Model):
            name: str
            path: str
            max_age: Duration


        class HeartbeatTarget(Target):
            kind: ClassVar[str] = "heartbeat"
            jobs: list[Job] = Field(default_factory=list)
    ''',
    "opsproof/heartbeat.py": '''
        """How long ago a file was last written."""

        import os
        import time


        class HeartbeatProbe:
            @classmethod
            def of(cls, target, environment):
                return cls()

            def age_s(self, path: str) -> float:
                return time.time() - os.stat(path).st_mtime

            def close(self):
                pass
    ''',
    "checks/test_heartbeat.py": '''
        """Cron heartbeats: every job ran recently."""

        import pytest


        @pytest.mark.p1
        def test_heartbeat_job_is_recent(heartbeat_target, heartbeat_job, heartbeat, evidence):
            age_h = round(heartbeat.age_s(heartbeat_job.path) / 3600, 1)
            evidence.expect("age_h", age_h, "<=", heartbeat_job.max_age / 3600)
    ''',
}
REGISTRY_LINE = '    Kind(HeartbeatTarget, "opsproof.heartbeat:HeartbeatProbe.of", (Items("heartbeat_job", "jobs"),)),\n'


def test_a_new_kind_is_its_own_files_plus_one_registry_line(tmp_path):
    """A copy of the project gains a kind exactly as the README says; its check runs, passes and fails."""
    root = Path(__file__).resolve().parent.parent
    project = tmp_path / "project"
    for name in ("opsproof", "fixtures"):
        shutil.copytree(root / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(root / name, project / name)
    for path, text in NEW_KIND_FILES.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(textwrap.dedent(text).lstrip())
    registry = project / "opsproof" / "environment" / "kinds.py"
    lines = registry.read_text().splitlines(keepends=True)
    lines.insert(lines.index("))\n", lines.index("KINDS: dict[str, Kind] = _checked((\n")), REGISTRY_LINE)
    lines.insert(lines.index("from opsproof.environment.base import Target\n"),
                 "from opsproof.environment.heartbeat import HeartbeatTarget\n")
    registry.write_text("".join(lines))

    fresh, stale = tmp_path / "export.done", tmp_path / "ledger.done"
    fresh.touch()
    stale.touch()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    (project / "environments").mkdir()
    (project / "environments" / "cron.yaml").write_text(json.dumps({"tier": "staging", "heartbeat": {"batch": {
        "jobs": [{"name": "export", "path": str(fresh), "max_age": "1h"},
                 {"name": "ledger", "path": str(stale), "max_age": "1h"}]}}}))
    run = subprocess.run([sys.executable, "-m", "pytest", "--env", "cron", "-p", "no:randomly"], cwd=project,
                         env={**os.environ, "PYTHONPATH": str(project)}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    (results,) = project.glob("reports/cron/*/results.json")
    checks = {c["id"]: (c["outcome"], c["message"]) for c in read_results(results)["checks"]}
    assert checks == {
        "checks/test_heartbeat.py::test_heartbeat_job_is_recent[batch:export]": ("passed", ""),
        "checks/test_heartbeat.py::test_heartbeat_job_is_recent[batch:ledger]": (
            "failed", "age_h (2.0) <= 1 on heartbeat.batch"),
    }
