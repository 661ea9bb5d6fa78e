"""The readiness report for audits: composed from the run history, rendered as HTML, Markdown or JSON."""

from opsproof.readiness.compose import compose
from opsproof.readiness.render import FORMATS, render

__all__ = ["FORMATS", "compose", "render"]
