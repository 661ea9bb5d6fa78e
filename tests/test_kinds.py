"""The kind registry: each entry agrees with its model at import, and opsproof/ and fixtures/ import no cycle."""

from __future__ import annotations

import graphlib
import textwrap
from typing import ClassVar

import grimp
import pytest
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
