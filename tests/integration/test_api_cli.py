"""`finfocus user` and `finfocus token` write the api's schema; what they make works on the api
at once, and a revoked token stops working."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.api_helpers import bearer, running_api

pytestmark = pytest.mark.integration


def finfocus(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_DATABASE_URL": settings.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_cli_users_and_tokens_work_on_the_api_and_revocation_is_immediate(settings):
    created = finfocus(settings, "token", "create", "--role", "approver", "--output", "json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    added = finfocus(
        settings,
        "user",
        "add",
        "carol",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="carol-secret-pw\n",
    )
    assert added.returncode == 0, added.stderr
    assert "carol-secret-pw" not in added.stdout + added.stderr
    assert (
        finfocus(
            settings, "user", "add", "x", "--role", "root", "--password-stdin", stdin="abcdefgh\n"
        ).returncode
        == 2
    )
    listed = json.loads(finfocus(settings, "user", "list", "--output", "json").stdout)
    assert [(u["name"], u["role"]) for u in listed["users"]] == [("carol", "viewer")]
    tokens = finfocus(settings, "token", "list", "--output", "json").stdout
    assert token not in tokens and json.loads(tokens)["tokens"][0]["role"] == "approver"
    async with running_api(settings) as (_app, client):
        me = await client.get("/api/v1/session", headers=bearer(token))
        assert me.status_code == 200 and me.json()["role"] == "approver"
        login = await client.post(
            "/login", data={"username": "carol", "password": "carol-secret-pw"}
        )
        assert login.status_code == 303
        assert finfocus(settings, "token", "revoke", token).returncode == 0
        assert (await client.get("/api/v1/session", headers=bearer(token))).status_code == 401
        # a user's token is that user: audited as user:carol, never more than carol may
        assert (
            finfocus(settings, "token", "create", "--role", "approver", "--user", "carol")
        ).returncode == 2
        assert (
            finfocus(settings, "token", "create", "--role", "viewer", "--user", "nobody")
        ).returncode == 2
        owned = finfocus(
            settings, "token", "create", "--role", "viewer", "--user", "carol", "--output", "json"
        )
        assert owned.returncode == 0, owned.stderr
        carols = json.loads(owned.stdout)["token"]
        me = (await client.get("/api/v1/session", headers=bearer(carols))).json()
        assert (me["actor"], me["role"]) == ("user:carol", "viewer")
        listed_tokens = json.loads(finfocus(settings, "token", "list", "--output", "json").stdout)
        assert [t["user_name"] for t in listed_tokens["tokens"]] == [None, "carol"]
        assert finfocus(settings, "user", "remove", "carol").returncode == 0
        # the user's tokens go with the user
        assert (await client.get("/api/v1/session", headers=bearer(carols))).status_code == 401
        client.cookies.clear()
        refused = await client.post(
            "/login", data={"username": "carol", "password": "carol-secret-pw"}
        )
        assert refused.status_code == 401
