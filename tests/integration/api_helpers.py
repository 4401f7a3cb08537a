"""Driving the api in-process on the real database: the app with its lifespan, an httpx
client over ASGI, and tokens or users made through the api's own store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


async def make_token(app, role: str, user: str | None = None) -> str:
    token_id, token = new_token()
    async with app.state.ctx.pool.acquire() as conn:
        await store.create_token(
            conn, token_id, token_hash(token), role, f"test-{role}", user_name=user
        )
    return token


async def make_user(app, name: str, role: str, password: str) -> None:
    async with app.state.ctx.pool.acquire() as conn:
        await store.add_user(conn, name, role, hash_password(password))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cost_actual(settings, *args: str) -> dict:
    """`finfocus cost actual --output json` on the test database, as a user would run it: the
    figure API and console totals must equal to the cent."""
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_DATABASE_URL": settings.database_url,
    }
    env.pop("FINFOCUS_READER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "finfocus.cli", "cost", "actual", *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
