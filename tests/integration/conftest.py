"""Integration fixtures: the throwaway PostgreSQL server of the session."""

from __future__ import annotations

from tests.integration.pg_server import (  # noqa: F401  (fixtures)
    _recycle_postgres_databases,
    _stop_postgres_at_the_end,
    pg_dsn,
    pg_server,
    running_server,
)
