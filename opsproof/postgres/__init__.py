"""PostgreSQL probe: a bounded, read-only session (session.py) and what the runbooks measure with it."""

from opsproof.postgres.probe import PostgresProbe

__all__ = ["PostgresProbe"]
