"""Driving the api in-process on the real database: the app with its lifespan, an httpx
client over ASGI, and tokens or users made through the api's own store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from services.api import store
from services.api.app import build_app
from services.api.config import ApiSettings
from services.api.security import hash_password, new_token, token_hash


@asynccontextmanager
async def running_api(settings, **overrides) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = build_app(ApiSettings(**{**settings.model_dump(), **overrides}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def make_token(app, role: str) -> str:
    token_id, token = new_token()
    async with app.state.ctx.pool.acquire() as conn:
        await store.create_token(conn, token_id, token_hash(token), role, f"test-{role}")
    return token


async def make_user(app, name: str, role: str, password: str) -> None:
    async with app.state.ctx.pool.acquire() as conn:
        await store.add_user(conn, name, role, hash_password(password))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
