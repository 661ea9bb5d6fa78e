"""Which versions answer behind a load balancer: N requests, each on a new connection, counted by version.

A pooled client keeps its connection, and a load balancer that balances connections would then send
every sample to the same backend; ``Connection: close`` makes each request open a new one.

>>> sample_versions(probe, "/version", json_path="build.version", samples=20)      # doctest: +SKIP
{'1.4.3': 17, '1.4.2': 3}
>>> sample_versions(probe, "/health", header="X-App-Version", samples=4)          # doctest: +SKIP
{'1.4.3': 3, 'HTTP 502': 1}
"""

from __future__ import annotations

from collections import Counter

MISSING_VERSION = "(no version)"


def version_of(response, json_path: str | None, header: str | None) -> str:
    """The version a response shows; an error status or an absent field says so instead."""
    if response.status_code >= 400:
        return f"HTTP {response.status_code}"
    value = response.header(header) if header else response.field(json_path, None)
    return MISSING_VERSION if value is None else str(value)


def sample_versions(probe, path: str, json_path: str | None = None, header: str | None = None,
                    samples: int = 20) -> dict[str, int]:
    """``samples`` sequential GETs, each on its own connection: how many showed each version, most first."""
    seen = Counter(version_of(probe.request("GET", path, headers={"Connection": "close"}), json_path, header)
                   for _ in range(samples))
    return dict(seen.most_common())
