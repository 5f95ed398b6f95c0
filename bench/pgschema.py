"""A PostgreSQL schema of its own for one benchmark run, and its removal afterwards."""

from __future__ import annotations

import uuid


def pg_url(base: str) -> tuple[str, str] | None:
    """(ledger URL in a fresh schema, schema name), or None when no server answers at `base`."""
    import psycopg

    try:
        psycopg.connect(base, connect_timeout=3).close()
    except psycopg.OperationalError:
        return None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return f"{base}?schema={schema}", schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
