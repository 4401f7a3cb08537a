"""Owns schema `api`: users, token and session hashes, saved views, the assistant's query
log and the decisions the api published. Nothing here touches another schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


# --- users ---------------------------------------------------------------------------------


async def add_user(conn: asyncpg.Connection, name: str, role: str, password_hash: str) -> bool:
    """Create or replace a login (role and password); True when it is new."""
    row = await conn.fetchrow(
        """INSERT INTO api.users (name, role, password_hash) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role,
               password_hash = EXCLUDED.password_hash, disabled_at = NULL
           RETURNING (xmax = 0) AS inserted""",
        name,
        role,
        password_hash,
    )
    if row is not None and not row["inserted"]:
        # a changed password or role ends the sessions made with the old one
        await conn.execute("DELETE FROM api.sessions WHERE user_name = $1", name)
    return bool(row and row["inserted"])


async def remove_user(conn: asyncpg.Connection, name: str) -> bool:
    return (await conn.execute("DELETE FROM api.users WHERE name = $1", name)).endswith(" 1")


async def list_users(conn: asyncpg.Connection) -> list[dict]:
    rows = await conn.fetch("SELECT name, role, created_at FROM api.users ORDER BY name")
    return [dict(r) for r in rows]


async def user_for_login(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT name, role, password_hash FROM api.users WHERE name = $1 AND disabled_at IS NULL",
        name,
    )


# --- tokens --------------------------------------------------------------------------------


async def create_token(
    conn: asyncpg.Connection,
    token_id: str,
    token_hash: str,
    role: str,
    name: str | None,
    expires_at: datetime | None = None,
    user_name: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO api.tokens (token_id, token_hash, role, name, expires_at, user_name)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        token_id,
        token_hash,
        role,
        name,
        expires_at,
        user_name,
    )


async def user_role(conn: asyncpg.Connection, name: str) -> str | None:
    """The role of an enabled user, None when there is no such user."""
    return await conn.fetchval(
        "SELECT role FROM api.users WHERE name = $1 AND disabled_at IS NULL", name
    )


async def revoke_token(conn: asyncpg.Connection, token_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api.tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL",
        token_id,
    )
    return status.endswith(" 1")


async def list_tokens(conn: asyncpg.Connection) -> list[dict]:
    rows = await conn.fetch(
        "SELECT token_id, role, name, user_name, created_at, expires_at, revoked_at, last_used_at "
        "FROM api.tokens ORDER BY created_at, token_id"
    )
    return [dict(r) for r in rows]


async def token_principal(conn: asyncpg.Connection, token_hash: str) -> asyncpg.Record | None:
    """The live token with this hash (not revoked, not expired, its owner, if any, still
    enabled), with its owner's current role (`user_role`): a token never outranks the user
    it belongs to, even after that user's role is lowered. Its last use is written at most
    once a minute, so a read stays one indexed SELECT."""
    row = await conn.fetchrow(
        """SELECT t.token_id, t.role, t.user_name, u.role AS user_role,
                  t.last_used_at < now() - interval '1 minute' OR t.last_used_at IS NULL AS stale
           FROM api.tokens t LEFT JOIN api.users u ON u.name = t.user_name
           WHERE t.token_hash = $1 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > now())
             AND (t.user_name IS NULL OR (u.name IS NOT NULL AND u.disabled_at IS NULL))""",
        token_hash,
    )
    if row is not None and row["stale"]:
        await conn.execute(
            "UPDATE api.tokens SET last_used_at = now() WHERE token_id = $1", row["token_id"]
        )
    return row


# --- sessions ------------------------------------------------------------------------------


async def create_session(
    conn: asyncpg.Connection, session_hash: str, user: str, csrf: str, expires_at: datetime
) -> None:
    await conn.execute("DELETE FROM api.sessions WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO api.sessions (session_hash, user_name, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
        session_hash,
        user,
        csrf,
        expires_at,
    )


async def session_principal(conn: asyncpg.Connection, session_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT s.user_name, u.role, s.csrf_token FROM api.sessions s
           JOIN api.users u ON u.name = s.user_name AND u.disabled_at IS NULL
           WHERE s.session_hash = $1 AND s.expires_at > now()""",
        session_hash,
    )


async def end_session(conn: asyncpg.Connection, session_hash: str) -> None:
    await conn.execute("DELETE FROM api.sessions WHERE session_hash = $1", session_hash)


# --- saved views, assistant log, decisions ------------------------------------------------


async def save_view(conn: asyncpg.Connection, owner: str, name: str, path: str) -> int:
    return await conn.fetchval(
        """INSERT INTO api.saved_views (owner, name, path) VALUES ($1, $2, $3)
           ON CONFLICT (owner, name) DO UPDATE SET path = EXCLUDED.path RETURNING view_id""",
        owner,
        name,
        path,
    )


async def list_views(conn: asyncpg.Connection, owner: str) -> list[dict]:
    rows = await conn.fetch(
        "SELECT view_id, name, path, created_at FROM api.saved_views WHERE owner = $1 ORDER BY name",
        owner,
    )
    return [dict(r) for r in rows]


async def delete_view(conn: asyncpg.Connection, owner: str, view_id: int) -> bool:
    status = await conn.execute(
        "DELETE FROM api.saved_views WHERE owner = $1 AND view_id = $2", owner, view_id
    )
    return status.endswith(" 1")


async def log_query(
    conn: asyncpg.Connection,
    *,
    actor: str,
    question: str,
    sql: str | None,
    engine: str | None,
    row_count: int | None,
    error: str | None,
    duration_ms: int | None,
) -> None:
    await conn.execute(
        """INSERT INTO api.assistant_queries (actor, question, sql, engine, row_count, error, duration_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        actor,
        question,
        sql,
        engine,
        row_count,
        error,
        duration_ms,
    )


async def record_decision(
    conn: asyncpg.Connection,
    decision_id: str,
    kind: str,
    subject: str,
    decision: str,
    actor: str,
    reason: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO api.decisions (decision_id, kind, subject, decision, actor, reason)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (decision_id) DO NOTHING""",
        decision_id,
        kind,
        subject,
        decision,
        actor,
        reason,
    )
