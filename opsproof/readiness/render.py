"""Render the composed document: HTML for people, Markdown for repositories, JSON for machines.

Templates ship with the package; the HTML is self-contained (inline CSS and server-side SVG, no script),
so it opens offline and prints as it looks.
"""

from __future__ import annotations

import json
from html import escape

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from opsproof.record import Measurement

FORMATS = ("html", "md", "json")
COLOURS = {"passed": "#2e7d32", "warned": "#f9a825", "waived": "#78909c", "failed": "#c62828"}


def trend_svg(trend: list[dict], width: int = 520, height: int = 120) -> Markup:
    """Stacked bars, one per run (oldest left): passed, warned, waived, failed counts."""
    if not trend:
        return Markup("")
    top = max(sum(run[k] for k in COLOURS) for run in trend) or 1
    slot = width / len(trend)
    bar = max(2.0, min(28.0, slot * 0.7))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width}" height="{height + 18}" '
             f'viewBox="0 0 {width} {height + 18}" role="img" aria-label="pass/warn/fail trend">']
    for index, run in enumerate(trend):
        x, y = index * slot + (slot - bar) / 2, float(height)
        for key, colour in COLOURS.items():
            if not run[key]:
                continue
            size = run[key] / top * (height - 4)
            y -= size
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{size:.1f}" fill="{colour}">'
                         f'<title>{escape(run["run_id"])}: {run[key]} {key}</title></rect>')
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>')
    parts.append(f'<text x="0" y="{height + 14}" font-size="10">{escape(trend[0]["started_at"][:10])}</text>')
    parts.append(f'<text x="{width}" y="{height + 14}" font-size="10" text-anchor="end">'
                 f'{escape(trend[-1]["started_at"][:10])}</text></svg>')
    return Markup("".join(parts))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("opsproof.readiness", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False), trim_blocks=True, lstrip_blocks=True)
    env.globals.update(trend_svg=trend_svg, colours=COLOURS)
    env.filters["seconds"] = lambda v: "n/a" if v is None else f"{float(v):.1f} s"
    env.filters["shown"] = lambda v: "not recorded" if v is None or v == "" else v  # never "None" in a report
    env.filters["describe"] = lambda measurement: Measurement.model_validate(measurement).describe()
    env.filters["cell"] = lambda v: str(v if v is not None else "").replace("|", "\\|").replace("\n", " ")
    return env


def render(document: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, default=str) + "\n"
    template = {"html": "report.html.j2", "md": "report.md.j2"}[fmt]
    return _environment().get_template(template).render(doc=document)
