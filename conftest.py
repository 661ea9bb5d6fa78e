"""Loads the opsproof plugin; everything else lives in fixtures/."""

import sys

pytest_plugins = ["fixtures.plugin"]


def pytest_plugin_registered(plugin, manager) -> None:
    """``fixtures.plugin`` registered as ``pytest_plugins`` would, without pytest's entry-point lookup
    for the name first (a read of every installed package's metadata; see fixtures/plugin.py)."""
    if plugin is sys.modules[__name__]:
        manager.import_plugin("fixtures.plugin")
