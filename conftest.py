"""Loads the opsproof plugin; everything else lives in fixtures/."""

pytest_plugins = ["fixtures.plugin"]
