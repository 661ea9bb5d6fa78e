"""One place that turns a configured target into its probe, so checks and the CLI open them alike."""

from __future__ import annotations

from opsproof.environment.model import Environment, HttpTarget, PostgresTarget, RedisTarget, Target


def open_probe(target: Target, environment: Environment):
    """A probe for ``target``; nothing connects until the first measurement."""
    if isinstance(target, HttpTarget):
        from opsproof.http import HttpProbe

        headers = {k: v.get_secret_value() for k, v in target.headers.items()}
        return HttpProbe(target.url, target.timeout_s, target.verify_tls, headers)
    if isinstance(target, PostgresTarget):
        from opsproof.postgres import PostgresProbe

        password = target.password.get_secret_value() if target.password else None
        return PostgresProbe(
            target.dsn, password, target.connect_timeout_s, target.statement_timeout_ms, environment.read_only
        )
    if isinstance(target, RedisTarget):
        from opsproof.redis import RedisProbe

        password = target.password.get_secret_value() if target.password else None
        return RedisProbe(target.url, password, target.timeout_s)
    raise TypeError(f"no probe for {type(target).__name__}")
