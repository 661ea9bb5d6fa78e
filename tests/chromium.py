"""Open an HTML report in headless Chromium and read back what the page measured about itself.

A small script is appended to a copy of the page; it runs after the page's own scripts (pytest-html
draws its table synchronously at the end of the body), so what it writes into the DOM is what a person
sees once the page has opened: the time since navigation start and whether anything is wider than the
window. ``chromium --dump-dom`` prints that DOM. Every call has a timeout. Used by bench/html_open.py
and tests/test_html_report.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
PROBE = """<script id="opsproof-probe">
(function () {
  var root = document.documentElement, widest = null;
  var scrollWidth = root.scrollWidth, opened = performance.now();  // the first layout is part of opening
  if (FIND_WIDEST) document.querySelectorAll('body *').forEach(function (e) {
    var right = e.getBoundingClientRect().right;
    if (right > window.innerWidth + 1 && (widest === null || right > widest.right)) {
      widest = {right: Math.round(right), tag: e.tagName, cls: e.className, text: (e.textContent || '').slice(0, 80)};
    }
  });
  var out = document.createElement('pre');
  out.id = 'opsproof-measured';
  out.textContent = JSON.stringify({
    opened_ms: opened, scroll_width: scrollWidth, inner_width: window.innerWidth,
    rows: document.querySelectorAll('tr').length, widest: widest});
  document.body.appendChild(out);
})();
</script>"""


def chromium() -> str | None:
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def _flags(width: int, height: int) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", f"--window-size={width},{height}"]


def measure(page: Path, width: int = 1280, height: int = 900, timeout_s: float = 60, widest: bool = True) -> dict:
    """Open ``page`` at ``width`` px; return what it measured, plus Chromium's wall time (``wall_s``).

    ``widest``: also find the element reaching furthest right (it lays out the whole page: slow on a big one)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium on PATH (scripts/setup.sh installs it)")
    text = page.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="opsproof-chromium-") as scratch:
        probed = Path(scratch) / page.name
        probe = PROBE.replace("FIND_WIDEST", "true" if widest else "false")
        probed.write_text(text.replace("</body>", probe + "</body>", 1) if "</body>" in text else text + probe,
                          encoding="utf-8")
        started = time.perf_counter()
        done = subprocess.run([binary, *_flags(width, height), f"--user-data-dir={scratch}/profile", "--dump-dom",
                               probed.as_uri()], capture_output=True, text=True, timeout=timeout_s)
        wall_s = time.perf_counter() - started
    found = re.search(r'<pre id="opsproof-measured">(.*?)</pre>', done.stdout, re.S)
    if found is None:
        raise RuntimeError(f"chromium printed no measurement (exit {done.returncode}): {done.stderr[-1500:]}")
    return {**json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                         .replace("&gt;", ">")), "wall_s": wall_s}


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 900, timeout_s: float = 60) -> Path:
    """A PNG of the page's first screen at ``width`` px."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium on PATH (scripts/setup.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="opsproof-chromium-") as scratch:
        subprocess.run([binary, *_flags(width, height), f"--user-data-dir={scratch}/profile",
                        f"--screenshot={out}", page.resolve().as_uri()],
                       capture_output=True, text=True, timeout=timeout_s, check=False)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out
