"""The target kinds: one entry each; the environment's sections, the probes and the checks' fixtures follow from it.

An entry names the kind's model (its ``kind`` is the YAML section; checks ask for ``<kind>_target`` and
``<kind>``), its probe factory as ``"module:function"`` (imported when the first target of the kind is
opened, so an environment without Kubernetes never imports the Kubernetes client), and the fields of a
target whose entries each become a test. Adding a kind is its own files plus one line in ``KINDS``
(and its import); an entry that disagrees with its model fails here, at import, saying what disagrees.

>>> KINDS["postgres"].probe, KINDS["postgres"].items
('opsproof.probes:_postgres', (Items(argname='postgres_invariant', field='invariants'),))
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass

from opsproof.environment.backups import BackupTarget
from opsproof.environment.base import Target
from opsproof.environment.datastores import MysqlTarget, PostgresTarget, RedisTarget
from opsproof.environment.dr import DrScenario
from opsproof.environment.host import HostTarget
from opsproof.environment.kubernetes import KubernetesTarget
from opsproof.environment.prometheus import AlertmanagerTarget, PrometheusTarget
from opsproof.environment.schema import SchemaTarget
from opsproof.environment.tcp import TcpTarget
from opsproof.environment.web import HttpTarget

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Items:
    """A target field whose entries each become one test, given to the check as ``argname``.

    A list of named entries (``http.X.requests``) gives one test per target and entry, id ``api:wallets``,
    and an entry's own ``severity`` wins; a mapping (``postgres.X.invariants``) gives one test per name
    across the kind's targets, and a target without that name skips it.
    """

    argname: str
    field: str


@dataclass(frozen=True)
class Kind:
    model: type[Target]
    probe: str  # "module:function", called as function(target, environment) -> probe
    items: tuple[Items, ...] = ()

    @property
    def name(self) -> str:
        return self.model.kind

    def listed(self, items: Items) -> bool:
        """True for a list field (one test per target and entry), False for a mapping (one per name)."""
        return typing.get_origin(self.model.model_fields[items.field].annotation) is list


def _checked(kinds: tuple[Kind, ...]) -> dict[str, Kind]:
    """The registry by name, once every entry agrees with its model and no two claim one name."""
    registry: dict[str, Kind] = {}
    argnames: dict[str, str] = {}
    for kind in kinds:
        if not (isinstance(kind.model, type) and issubclass(kind.model, Target)):
            raise TypeError(f"opsproof kinds: {getattr(kind.model, '__name__', kind.model)} is not a Target model")
        model = kind.model.__name__
        if not _IDENTIFIER.match(kind.name):
            raise TypeError(f"opsproof kinds: {model}.kind {kind.name!r} must be a lower-case identifier "
                            f"(it names the YAML section and the fixtures {kind.name}_target and {kind.name})")
        if kind.name in registry:
            raise TypeError(f"opsproof kinds: {model} and {registry[kind.name].model.__name__} both claim "
                            f"kind {kind.name!r}")
        if not _FACTORY.match(kind.probe):
            raise TypeError(f"opsproof kinds: {kind.name}: probe {kind.probe!r} is not 'module:function'")
        for fixture in (kind.name, f"{kind.name}_target"):
            if fixture in argnames:
                raise TypeError(f"opsproof kinds: fixture {fixture!r} is claimed by {argnames[fixture]} too")
            argnames[fixture] = f"kind {kind.name}"
        for items in kind.items:
            field = kind.model.model_fields.get(items.field)
            origin = typing.get_origin(field.annotation) if field else None
            if origin not in (list, dict):
                raise TypeError(f"opsproof kinds: {kind.name}: items {items.argname}: {model} has no list or "
                                f"mapping field {items.field!r}")
            if items.argname in argnames:
                raise TypeError(f"opsproof kinds: fixture {items.argname!r} is claimed by {argnames[items.argname]} "
                                f"and by {kind.name}.{items.field}")
            argnames[items.argname] = f"{kind.name}.{items.field}"
        registry[kind.name] = kind
    return registry


KINDS: dict[str, Kind] = _checked((
    Kind(HttpTarget, "opsproof.probes:_http",
         (Items("smoke_request", "requests"), Items("dependency", "dependencies"), Items("latency_path", "latencies"))),
    Kind(PostgresTarget, "opsproof.probes:_postgres", (Items("postgres_invariant", "invariants"),)),
    Kind(RedisTarget, "opsproof.probes:_redis", (Items("redis_queue", "queues"),)),
    Kind(KubernetesTarget, "opsproof.probes:_kubernetes", (Items("pod_log", "logs"),)),
    Kind(HostTarget, "opsproof.probes:_host", (Items("host_command", "commands"), Items("host_log", "logs"),
                                              Items("host_process", "process_checks"))),
    Kind(DrScenario, "opsproof.drills.dr:DrDrill"),
    Kind(BackupTarget, "opsproof.probes:_backups"),
    Kind(MysqlTarget, "opsproof.probes:_mysql", (Items("mysql_invariant", "invariants"),)),
    Kind(PrometheusTarget, "opsproof.probes:_prometheus", (Items("prom_query", "queries"),)),
    Kind(AlertmanagerTarget, "opsproof.alerting:AlertmanagerProbe.of"),
    Kind(TcpTarget, "opsproof.tcp:TcpProbe.of"),
    Kind(SchemaTarget, "opsproof.schema.probe:SchemaProbe.of"),
))
