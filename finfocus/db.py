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
    return await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection
    )


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
    """Apply the pending migrations of `schema` from `directory`; returns the versions applied.

    The migrations run as the schema's owner: a service's own LOGIN role on the embedded
    stack, or whoever made the schema. A superuser that runs them (a CLI with the admin URL)
    switches to the owner first, so every object stays the owner's.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"invalid schema name {schema!r}")
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    switched = False
    try:
        await _ensure_reader_role(conn)
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
        )
        if owner is None:
            # checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even
            # when the schema exists, which a service role does not have
            await conn.execute(f"CREATE SCHEMA {schema}")
        elif owner != await conn.fetchval("SELECT current_user") and await conn.fetchval(
            "SELECT pg_has_role(current_user, $1, 'MEMBER')", owner
        ):
            await conn.execute(f'SET ROLE "{owner}"')
            switched = True
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]
            for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
        }
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
            logger.info(
                "migration applied", extra={"fields": {"schema": schema, "version": version}}
            )
        await _grant_views_to_reader(conn, schema)
    finally:
        if switched:
            await conn.execute("RESET ROLE")
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def _ensure_reader_role(conn: asyncpg.Connection) -> None:
    """The reader role exists (the embedded stack makes it a LOGIN role); a connection that
    may create roles makes a NOLOGIN one where nobody did, one that may not leaves it be."""
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READER_ROLE):
        return
    may = await conn.fetchval(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )
    if may:
        try:
            await conn.execute(f"CREATE ROLE {READER_ROLE} NOLOGIN")
        except asyncpg.DuplicateObjectError:
            return
        if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            # a CREATEROLE user (not a superuser) must be a member to SET ROLE in `reader`
            await conn.execute(f"GRANT {READER_ROLE} TO current_user")


async def _grant_views_to_reader(conn: asyncpg.Connection, schema: str) -> None:
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READER_ROLE):
        logger.warning("no role %s: views of %s not granted", READER_ROLE, schema)
        return
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


def reader_url_for(url: str) -> str | None:
    """The URL of the reader's own LOGIN role for the database `url` names, if one is known:
    `FINFOCUS_READER_DATABASE_URL`, or the embedded stack's reader when `url` is the
    embedded PostgreSQL."""
    from finfocus.settings import FinFocusSettings

    settings = FinFocusSettings()
    if settings.reader_database_url:
        return settings.reader_database_url
    if settings.database_url:
        return None  # a given URL names another server than the embedded one
    try:
        embedded = settings.database
    except Exception:  # noqa: BLE001 - no embedded stack
        return None
    return settings.embedded_reader_url() if _same_server(url, embedded) else None


def _same_server(a: str, b: str) -> bool:
    from urllib.parse import urlsplit

    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.hostname, pa.port, pa.path) == (pb.hostname, pb.port, pb.path)


@asynccontextmanager
async def reader(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A read-only connection as the reader role: the CLI's only way into the database.

    It logs in as `finfocus_reader` itself wherever its URL is known (the embedded stack,
    `FINFOCUS_READER_DATABASE_URL`). Only a deployment that gives one URL and no reader URL
    (the tests' superuser databases) falls back to `SET ROLE` inside that session, which is
    no boundary against a hostile caller: production sets the reader URL.
    """
    own = reader_url_for(url)
    conn = await connect(own or url)
    try:
        if own is None:
            await conn.execute(f"SET ROLE {READER_ROLE}")
        await conn.execute("SET default_transaction_read_only = on")
        yield conn
    finally:
        await conn.close()
