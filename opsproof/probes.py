"""One place that turns a configured target into its probe, so checks and the CLI open them alike.

Each kind's entry in ``KINDS`` names its factory ``(target, environment) -> probe``: the built-in
kinds' factories are below. Probe modules are imported only when a target of their kind is opened,
so an environment without Kubernetes never imports it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from opsproof.environment.kinds import KINDS
from opsproof.environment.model import Environment, Target


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def _http(target, environment: Environment):
    from opsproof.http import HttpProbe

    headers = {k: v.get_secret_value() for k, v in target.headers.items()}
    auth = None
    if target.auth and target.auth.bearer_token:
        headers["Authorization"] = f"Bearer {target.auth.bearer_token.get_secret_value()}"
    elif target.auth:
        auth = (target.auth.basic_user, target.auth.basic_password.get_secret_value())
    verify = target.verify_tls
    if verify and target.tls and target.tls.ca_file:  # requests trust the CA the TLS checks verify against
        from opsproof.http import tls_context

        verify = tls_context(target.tls.ca_file)
    return HttpProbe(target.url, target.timeout_s, verify, headers, auth=auth,
                     follow_redirects=target.follow_redirects, proxy=target.proxy,
                     max_body_bytes=target.max_body_bytes)


def dependency_probe(dependency):
    """A dependency's own client: its URL and timeout and nothing of its target's (no token, basic
    credentials, headers, proxy or CA), so a third party's status page never sees them."""
    from opsproof.http import HttpProbe

    return HttpProbe(dependency.url, dependency.timeout_s)


def _prometheus(target, environment: Environment):
    from opsproof.metrics import PrometheusProbe

    return PrometheusProbe(target.url, target.timeout_s)


def _postgres(target, environment: Environment):
    from opsproof.postgres import PostgresProbe

    return PostgresProbe(target.dsn, _secret(target.password), target.connect_timeout_s,
                         target.statement_timeout_ms, environment.read_only,
                         refuse_privileged_role=environment.tier == "production")


def _redis(target, environment: Environment):
    from opsproof.redis import RedisProbe

    return RedisProbe(target.url, _secret(target.password), target.timeout_s)


def _kubernetes(target, environment: Environment):
    from opsproof.kubernetes import KubernetesProbe

    return KubernetesProbe(target.kubeconfig, target.context, target.in_cluster, target.request_timeout_s)


def _host(target, environment: Environment):
    from opsproof.host import HostProbe

    return HostProbe(target.host, target.ssh_identity_file, target.ssh_config, target.timeout_s)


def _backups(target, environment: Environment):
    from opsproof.backups import BackupProbe

    return BackupProbe(target, environment, open_probe)


def _mysql(target, environment: Environment):
    from opsproof.mysql import MysqlProbe

    return MysqlProbe(target.host, target.port, target.user, _secret(target.password), target.database,
                      target.connect_timeout_s, target.statement_timeout_ms, environment.read_only,
                      refuse_privileged_role=environment.tier == "production")


def open_probe(target: Target, environment: Environment):
    """A probe for ``target``; nothing connects until the first measurement."""
    kind = KINDS.get(target.kind)
    if kind is None:
        raise TypeError(f"no probe registered for {target.kind} targets")
    return factory(kind.probe)(target, environment)


@functools.cache
def factory(path: str) -> Callable[[Target, Environment], object]:
    """``"opsproof.probes:_postgres"`` -> that function, its module imported on first use."""
    module, _, attribute = path.partition(":")
    found = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found
