"""A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port, for one test module.

Its own config, storage directory and port; gossip off. Import the fixture into a test module:
``from alertmanager import alertmanager  # noqa: F401``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

import httpx
import pytest

from opsproof.processes import free_port, stop_pid, wait_for_port

CONFIG = """\
route:
  receiver: nowhere
  group_by: [alertname]
receivers:
  - name: nowhere
"""


@dataclass(frozen=True)
class Alertmanager:
    url: str

    def alerts(self, **labels: str) -> list[dict]:
        """Active alerts whose labels include ``labels`` (GET /api/v2/alerts: resolved ones are left out)."""
        matchers = [f'{name}="{value}"' for name, value in labels.items()]
        response = httpx.get(f"{self.url}/api/v2/alerts", params={"filter": matchers}, timeout=5)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory) -> Alertmanager:
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "prometheus-alertmanager is missing: scripts/setup.sh installs it (scripts/system-packages.txt)"
    directory = tmp_path_factory.mktemp("alertmanager")
    (directory / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = open(directory / "alertmanager.log", "wb")  # noqa: SIM115 - open while it runs
    process = subprocess.Popen([binary, f"--config.file={directory / 'alertmanager.yml'}",
                                f"--storage.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                "--cluster.listen-address="], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, 30, "alertmanager", process)
        _wait_ready(url)
        yield Alertmanager(url)
    finally:
        stop_pid(process.pid)
        process.wait()
        log.close()


def _wait_ready(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"alertmanager at {url} never became ready")
