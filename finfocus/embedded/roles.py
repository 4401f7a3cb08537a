"""Per-service LOGIN roles on the embedded PostgreSQL, made by its superuser at `up`.

Each service connects as `finfocus_<service>`, which owns its schema and nothing else: it
cannot read or write another service's tables, create schemas, create roles or run
programs on the server (`COPY ... FROM PROGRAM` needs superuser or
`pg_execute_server_program`). The CLI reads the `v_*` views as `finfocus_reader`, a real
LOGIN role (read-only by default). Passwords are random, kept 0600 under
`FINFOCUS_HOME/secrets/postgres/<role>.password` (reused across restarts) and handed to each
service as its own `FINFOCUS_DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg

from finfocus.db import READER_ROLE
from finfocus.embedded.postgres import DATABASE, new_password, read_secret, write_secret


def service_role(service: str) -> str:
    return f"finfocus_{service}"


def password_file(home: Path, role: str) -> Path:
    return home / "secrets" / "postgres" / f"{role}.password"


def role_password(home: Path, role: str) -> str:
    """The role's stored password, made (and stored 0600) the first time."""
    path = password_file(home, role)
    password = read_secret(path)
    if password is None:
        password = new_password()
        write_secret(path, password)
    return password


async def _login_role(conn: asyncpg.Connection, role: str, password: str) -> None:
    # the password alphabet is URL-safe base64: nothing to escape in the literal
    options = f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '{password}'"
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        await conn.execute(f"ALTER ROLE {role} WITH {options}")
    else:
        await conn.execute(f"CREATE ROLE {role} WITH {options}")
    # CONNECT was revoked from PUBLIC; TEMPORARY too, which the stores' bulk writes need
    # (COPY into a temporary table, then one INSERT ... ON CONFLICT)
    privileges = "CONNECT" if role == READER_ROLE else "CONNECT, TEMPORARY"
    await conn.execute(f"GRANT {privileges} ON DATABASE {DATABASE} TO {role}")


async def _give_schema(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """`schema` and everything in it owned by `role` (also a schema an older FinFocus made
    as the superuser)."""
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
    await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
    kinds = {
        "r": "TABLE",
        "p": "TABLE",
        "f": "FOREIGN TABLE",
        "v": "VIEW",
        "m": "MATERIALIZED VIEW",
        "S": "SEQUENCE",
    }
    rows = await conn.fetch(
        """SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind::text = ANY($2::text[])
             AND pg_get_userbyid(c.relowner) <> $3
           ORDER BY c.relkind = 'S'""",
        schema,
        list(kinds),
        role,
    )
    for row in rows:
        # a sequence owned by a table refuses: it moved with its table
        with contextlib.suppress(asyncpg.ObjectNotInPrerequisiteStateError):
            await conn.execute(
                f'ALTER {kinds[row["relkind"]]} {schema}."{row["relname"]}" OWNER TO {role}'
            )
    for row in await conn.fetch(
        """SELECT p.oid::regprocedure::text AS sig, p.prokind FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2""",
        schema,
        role,
    ):
        kind = "PROCEDURE" if row["prokind"] == "p" else "FUNCTION"
        await conn.execute(f"ALTER {kind} {row['sig']} OWNER TO {role}")
    for row in await conn.fetch(
        """SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = $1 AND t.typtype IN ('e', 'd') AND pg_get_userbyid(t.typowner) <> $2""",
        schema,
        role,
    ):
        await conn.execute(f'ALTER TYPE {schema}."{row["typname"]}" OWNER TO {role}')


async def provision_async(admin_url: str, home: Path, services: tuple[str, ...]) -> dict[str, str]:
    """Roles, schemas and grants; returns the password of each role (services and reader)."""
    passwords = {service_role(s): role_password(home, service_role(s)) for s in services}
    passwords[READER_ROLE] = role_password(home, READER_ROLE)
    conn = await asyncpg.connect(admin_url)
    try:
        async with conn.transaction():
            # one provisioning at a time (two `up` on one cluster would race on CREATE ROLE)
            await conn.execute("SELECT pg_advisory_xact_lock(x'46494E52'::int)")
            await conn.execute(f"REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC")
            await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            for role, password in passwords.items():
                await _login_role(conn, role, password)
            await conn.execute(f"ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on")
            for service in services:
                await _give_schema(conn, service, service_role(service))
                await conn.execute(f"GRANT USAGE ON SCHEMA {service} TO {READER_ROLE}")
    finally:
        await conn.close()
    return passwords


def provision(admin_url: str, home: Path, services: tuple[str, ...]) -> dict[str, str]:
    """`provision_async` from synchronous code (the supervisor)."""
    return asyncio.run(provision_async(admin_url, home, services))
