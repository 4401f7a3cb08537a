"""PostgreSQL pool, per-service migrations and the read-only role the CLI reads views through.

Each service owns the schema named after it. Its migrations are numbered plain SQL files
(`services/<name>/migrations/0001_init.sql`), recorded in `<schema>.schema_migrations` and
applied under one advisory lock, so concurrent start-ups apply each file exactly once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

logger = logging.getLogger(__name__)

#: role with SELECT on the `v_*` views of every schema and nothing else
READER_ROLE = "finfocus_reader"
_MIGRATION_LOCK = 0x46494E46  # "FINF"
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool with JSON codecs; numeric columns come back as Decimal."""
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection)


async def connect(url: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool (CLI commands, tests)."""
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


def migration_files(directory: Path) -> list[tuple[int, str, Path]]:
    """The numbered migration files of a directory, in order; a malformed name is an error."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append((int(match.group(1)), match.group(2), path))
    versions = [v for v, _, _ in found]
    if len(versions) != len(set(versions)):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return found


async def migrate(conn: asyncpg.Connection, schema: str, directory: Path) -> list[int]:
    """Apply the pending migrations of `schema` from `directory`; returns the versions applied."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"invalid schema name {schema!r}")
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
        for version, name, path in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(path.read_text())
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)",
                    version,
                    name,
                )
            applied_now.append(version)
            logger.info("migration applied", extra={"fields": {"schema": schema, "version": version}})
        await _grant_views_to_reader(conn, schema)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def _grant_views_to_reader(conn: asyncpg.Connection, schema: str) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READER_ROLE)
    if not exists:
        try:
            await conn.execute(f"CREATE ROLE {READER_ROLE} NOLOGIN")
        except asyncpg.DuplicateObjectError:
            pass
    is_member = await conn.fetchval(
        "SELECT pg_has_role(current_user, $1, 'MEMBER')", READER_ROLE
    )
    if not is_member:
        await conn.execute(f"GRANT {READER_ROLE} TO current_user")
    await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {READER_ROLE}")
    views = await conn.fetch(
        "SELECT table_name FROM information_schema.views WHERE table_schema = $1 AND table_name LIKE 'v\\_%'",
        schema,
    )
    for row in views:
        await conn.execute(f'GRANT SELECT ON {schema}."{row["table_name"]}" TO {READER_ROLE}')


async def migrate_url(url: str, schema: str, directory: Path) -> list[int]:
    """`migrate` over a fresh connection: what each service runs at start-up."""
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn, schema, directory)
    finally:
        await conn.close()


@asynccontextmanager
async def reader(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A read-only connection under the reader role: the CLI's only way into the database."""
    conn = await connect(url)
    try:
        await conn.execute(f"SET ROLE {READER_ROLE}")
        await conn.execute("SET default_transaction_read_only = on")
        yield conn
    finally:
        await conn.close()
