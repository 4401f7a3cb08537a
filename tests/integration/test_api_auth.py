"""The api's authentication on the real database: tokens, sessions, roles and CSRF."""

from __future__ import annotations

import pytest

from tests.integration.api_helpers import bearer, make_token, make_user, running_api

pytestmark = pytest.mark.integration


async def test_health_needs_no_token_and_everything_else_answers_401_without_one(settings):
    async with running_api(settings) as (_app, client):
        health = await client.get("/api/v1/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert (await client.get("/api/v1/session")).status_code == 401
        assert (
            await client.get("/api/v1/session", headers=bearer("ffk_nope_nope"))
        ).status_code == 401
        assert (
            await client.get("/api/v1/session", headers={"Authorization": "Basic eDp5"})
        ).status_code == 401


async def test_a_token_names_its_role_and_a_revoked_one_is_refused(settings):
    async with running_api(settings) as (app, client):
        token = await make_token(app, "viewer")
        me = await client.get("/api/v1/session", headers=bearer(token))
        assert me.status_code == 200 and me.json()["role"] == "viewer"
        from services.api import store

        async with app.state.ctx.pool.acquire() as conn:
            assert await store.revoke_token(conn, me.json()["name"])
        assert (await client.get("/api/v1/session", headers=bearer(token))).status_code == 401


async def test_login_sets_an_httponly_strict_session_and_logout_ends_it(settings):
    async with running_api(settings) as (app, client):
        await make_user(app, "alice", "approver", "correct horse")
        bad = await client.post("/login", data={"username": "alice", "password": "wrong"})
        assert bad.status_code == 401
        ok = await client.post("/login", data={"username": "alice", "password": "correct horse"})
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = next(
            h for h in ok.headers.get_list("set-cookie") if h.startswith("finfocus_session=")
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        me = await client.get("/api/v1/session")
        assert me.json()["name"] == "alice" and me.json()["csrf_token"]
        await client.get("/logout")
        assert (await client.get("/api/v1/session")).status_code == 401


async def test_logins_are_throttled_per_user(settings):
    async with running_api(settings, api_login_attempts=3) as (app, client):
        await make_user(app, "bob", "viewer", "pw-bob")
        for _ in range(3):
            assert (
                await client.post("/login", data={"username": "bob", "password": "x"})
            ).status_code == 401
        blocked = await client.post("/login", data={"username": "bob", "password": "pw-bob"})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


async def test_a_decision_the_broker_cannot_take_answers_503_and_records_nothing(settings):
    async with running_api(settings, kafka_bootstrap="127.0.0.1:1") as (app, client):
        token = await make_token(app, "admin")
        put = await client.put(
            "/api/v1/budgets/ops", json={"amount": "10", "currency": "USD"}, headers=bearer(token)
        )
        assert put.status_code == 503 and "broker" in put.json()["detail"]
        async with app.state.ctx.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM api.decisions") == 0
