"""The command line as a client of a remote deployment (FINFOCUS_API_URL + FINFOCUS_API_TOKEN):
the api listens on a real port, the CLI runs as a user would run it with no database or broker
it could reach, reads print the same documents as the local CLI, a viewer's approve is refused
(exit 1, the API's 403 in the message), an approver's approve is applied and the audit names
that token's holder."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finfocus.db import migrate_url
from services.anomaly.app import build_app as build_anomaly
from services.api import store as api_store
from services.api.app import build_app
from services.api.config import ApiSettings
from services.api.security import new_token, token_hash
from services.forecast.app import build_app as build_forecast
from services.remediation import store as remediation_store
from services.remediation.domain import initial_status
from tests.integration.api_helpers import cost_actual
from tests.integration.api_seed import refresh_daily_costs, seed_cost_lines
from tests.integration.test_api_service import remediation_decisions  # noqa: F401 - a fixture
from tests.integration.test_forecast_service import forecast_settings
from tests.integration.test_remediation_executor import command

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

#: addresses nothing listens on: remote mode must not need the database or the broker
NOWHERE_DB = "postgresql://nobody@127.0.0.1:9/none"
NOWHERE_KAFKA = "127.0.0.1:9"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serving(settings, **overrides):
    """The api app under uvicorn on a free port of 127.0.0.1: (app, its URL)."""
    port = _free_port()
    app = build_app(ApiSettings(**{**settings.model_dump(), **overrides}))
    server, task = await _serve(app, port)
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            return server, task
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    raise AssertionError("the api did not start")


async def _token(app, role: str, name: str) -> tuple[str, str]:
    token_id, token = new_token()
    async with app.state.ctx.pool.acquire() as conn:
        await api_store.create_token(conn, token_id, token_hash(token), role, name)
    return token_id, token


async def finfocus(home, url: str, token: str | None, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
    env.update(
        FINFOCUS_HOME=str(home),
        FINFOCUS_API_URL=url,
        FINFOCUS_DATABASE_URL=NOWHERE_DB,
        FINFOCUS_KAFKA_BOOTSTRAP=NOWHERE_KAFKA,
    )
    if token is not None:
        env["FINFOCUS_API_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "finfocus.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


def local(settings, *args: str) -> dict:
    """The local CLI (database through the read-only role) with --output json."""
    import subprocess

    env = {
        **os.environ,
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_DATABASE_URL": settings.database_url,
    }
    for key in ("FINFOCUS_API_URL", "FINFOCUS_API_TOKEN", "FINFOCUS_READER_DATABASE_URL"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_the_cli_in_remote_mode_reads_like_the_local_cli_and_decides_with_the_tokens_role(
    settings,
    remediation_decisions,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    await seed_cost_lines(settings.database_url)
    await refresh_daily_costs(settings.database_url)
    for service in ("anomaly", "forecast"):  # their views, empty: the reads answer [] both ways
        await migrate_url(
            settings.database_url, service, ROOT / "services" / service / "migrations"
        )
    pending = command(
        "stop-instance",
        "i-0remote",
        approval=True,
        expires_in=timedelta(days=1),
        issued_at=datetime.now(UTC),
    )
    async with remediation_store.transaction(remediation_decisions.pool) as conn:
        await remediation_store.insert_command(
            conn, pending, initial_status(pending), actor="planner"
        )
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=20)).isoformat(), (today + timedelta(days=1)).isoformat()
    window = ("--from", start, "--to", end)
    local_costs = cost_actual(settings, *window, "--group-by", "service,account")
    local_usd = cost_actual(settings, *window, "--filter", "provider=aws")
    local_reads = {
        args: local(settings, *args)
        for args in (
            ("anomalies", "list"),
            ("budget", "list"),
            ("recommendations", "list", "--state", "all"),
            ("savings", "report"),
            ("remediation", "list"),
            ("anomalies", "monitors", "list"),
        )
    }

    home = tmp_path / "client-home"  # the client's own home: no keys, no stack
    async with serving(settings) as (app, url):
        _, viewer = await _token(app, "viewer", "victor")
        approver_id, approver = await _token(app, "approver", "alice")

        # reads: the same documents, to the cent
        code, out, err = await finfocus(
            home,
            url,
            viewer,
            "cost",
            "actual",
            *window,
            "--group-by",
            "service,account",
            "--output",
            "json",
        )
        assert code == 0, err
        remote_costs = json.loads(out)
        assert remote_costs == local_costs
        assert remote_costs["summary"]["totals"] and all(
            Decimal(t["totalCost"]) > 0 for t in remote_costs["summary"]["totals"]
        )
        code, out, err = await finfocus(
            home,
            url,
            viewer,
            "cost",
            "actual",
            *window,
            "--filter",
            "provider=aws",
            "--output",
            "json",
        )
        assert code == 0, err
        assert json.loads(out) == local_usd
        assert Decimal(json.loads(out)["summary"]["totalCost"]) == Decimal(
            local_usd["summary"]["totalCost"]
        )
        code, out, err = await finfocus(
            home, url, viewer, "cost", "actual", *window
        )  # the table too
        assert code == 0, err
        usd = next(t for t in local_costs["summary"]["totals"] if t["currency"] == "USD")
        expected_line = f"Total USD: {Decimal(usd['totalCost']).quantize(Decimal('0.01')):,f}"
        assert expected_line in out
        for args, expected in local_reads.items():
            code, out, err = await finfocus(home, url, viewer, *args, "--output", "json")
            assert code == 0, (args, err)
            assert json.loads(out) == expected, args
        assert [c["command_id"] for c in local_reads[("remediation", "list")]["commands"]] == [
            pending.command_id
        ]

        # no token: a clear usage error, nothing sent
        code, _, err = await finfocus(home, url, None, "remediation", "approve", pending.command_id)
        assert code == 2 and "FINFOCUS_API_TOKEN" in err

        # a viewer may not approve: the API's 403, exit 1
        code, out, err = await finfocus(
            home, url, viewer, "remediation", "approve", pending.command_id, "--reason", "ship it"
        )
        assert code == 1, (out, err)
        assert "not allowed" in err and "403" in err and "approver" in err
        # an approver may (a unique prefix of the id, as locally)
        code, out, err = await finfocus(
            home,
            url,
            approver,
            "remediation",
            "approve",
            pending.command_id[:12],
            "--reason",
            "saves money",
        )
        assert code == 0, err
        assert out.strip() == f"command {pending.command_id} approved"
        code, out, err = await finfocus(
            home, url, approver, "remediation", "audit", pending.command_id, "--output", "json"
        )
        assert code == 0, err
        approved = [a for a in json.loads(out)["audit"] if a["event"] == "approved"]
        assert [(a["actor"], a["reason"]) for a in approved] == [
            (f"api:token:{approver_id}", "saves money")
        ]
        async with app.state.ctx.pool.acquire() as conn:  # the token that approved is alice's
            assert (
                await conn.fetchval("SELECT name FROM api.tokens WHERE token_id = $1", approver_id)
                == "alice"
            )
        # approving again: the API's 409 as the local message, exit 1
        code, _, err = await finfocus(
            home, url, approver, "remediation", "approve", pending.command_id
        )
        assert code == 1 and "not pending approval" in err
        # the other decisions take the same path: the API's role check and its 404
        code, _, err = await finfocus(home, url, viewer, "anomalies", "feedback", "anm-none", "yes")
        assert code == 1 and "not allowed" in err and "403" in err
        code, _, err = await finfocus(
            home, url, approver, "budget", "set", "team", "--amount", "100"
        )
        assert code == 1 and "not allowed" in err and "needs admin" in err
        code, _, err = await finfocus(
            home,
            url,
            approver,
            "anomalies",
            "monitors",
            "add",
            "by-region",
            "--dimension",
            "RegionId",
            "--replace",
        )
        assert code == 1 and "not allowed" in err and "needs admin" in err
        code, _, err = await finfocus(
            home, url, approver, "recommendations", "dismiss", "rec-none", "--reason", "not ours"
        )
        assert code == 1 and "no recommendation rec-none" in err
        # an unreachable API: one line, exit 1
        code, _, err = await finfocus(
            home, f"http://127.0.0.1:{_free_port()}", viewer, "budget", "list"
        )
        assert code == 1 and "cannot reach the FinFocus API" in err


@pytest.fixture
async def anomaly(settings):
    app = build_anomaly(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_an_admin_changes_a_monitor_from_the_remote_cli(settings, anomaly, tmp_path):
    home = tmp_path / "client-home"
    async with serving(settings, api_decision_wait_s=20) as (app, url):
        admin_id, admin = await _token(app, "admin", "ada")
        code, out, err = await finfocus(
            home,
            url,
            admin,
            "anomalies",
            "monitors",
            "add",
            "regions",
            "--dimension",
            "RegionId",
            "--top",
            "5",
            "--param",
            "threshold=4.5",
        )
        assert code == 0, err
        assert out.strip() == "monitor regions saved"
        code, out, err = await finfocus(
            home, url, admin, "anomalies", "monitors", "list", "--output", "json"
        )
        assert code == 0, err
        remote_list = json.loads(out)
        assert remote_list == local(settings, "anomalies", "monitors", "list")
        regions = next(m for m in remote_list["monitors"] if m["name"] == "regions")
        assert (regions["dimensions"], regions["top"]) == (["RegionId"], 5)
        assert Decimal(str(regions["params"]["threshold"])) == Decimal("4.5")
        async with app.state.ctx.reader() as conn:
            assert (
                await conn.fetchval(
                    "SELECT updated_by FROM anomaly.v_monitors WHERE name = 'regions'"
                )
                == f"api:token:{admin_id}"
            )
        code, out, err = await finfocus(
            home, url, admin, "anomalies", "monitors", "add", "regions", "--dimension", "RegionId"
        )
        assert code == 1 and "exists (use --replace)" in err
        code, out, err = await finfocus(
            home, url, admin, "anomalies", "monitors", "remove", "regions"
        )
        assert code == 0, err
        assert out.strip() == "monitor regions removed"
        code, _, err = await finfocus(
            home, url, admin, "anomalies", "monitors", "remove", "regions"
        )
        assert code == 1 and "no monitor regions" in err


async def test_an_admin_sets_and_deletes_a_budget_from_the_remote_cli(settings, tmp_path):
    forecast = build_forecast(forecast_settings(settings))
    await forecast.start()
    home = tmp_path / "client-home"
    try:
        async with serving(settings, api_decision_wait_s=15) as (app, url):
            admin_id, admin = await _token(app, "admin", "ada")
            code, out, err = await finfocus(
                home,
                url,
                admin,
                "budget",
                "set",
                "team-a",
                "--amount",
                "1000.50",
                "--threshold",
                "actual:80",
            )
            assert code == 0, err
            assert out.strip() == "budget team-a set: 1000.50 USD monthly"
            code, out, err = await finfocus(home, url, admin, "budget", "list", "--output", "json")
            assert code == 0, err
            listed = json.loads(out)
            assert listed == local(settings, "budget", "list")
            assert [(b["name"], b["amount"], b["currency"]) for b in listed["budgets"]] == [
                ("team-a", "1000.50", "USD")
            ]
            async with app.state.ctx.reader() as conn:  # the forecast service audits the token
                actors = await conn.fetch(
                    "SELECT actor FROM forecast.v_budget_audit WHERE name = 'team-a'"
                )
            assert actors and {r["actor"] for r in actors} == {f"api:token:{admin_id}"}
            code, out, err = await finfocus(home, url, admin, "budget", "delete", "team-a")
            assert code == 0, err
            assert out.strip() == "budget team-a deleted"
            code, out, err = await finfocus(home, url, admin, "budget", "list", "--output", "json")
            assert json.loads(out) == {"budgets": []}
            code, _, err = await finfocus(home, url, admin, "budget", "delete", "team-a")
            assert code == 1 and "no budget named 'team-a'" in err
    finally:
        await forecast.stop()
