"""The api on the real database and broker: a viewer reads the same figures as
`finfocus cost actual`, may not decide; an approver's approval travels as a signed event,
remediation applies it and its audit names the user."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from finfocus.service import ServiceRuntime
from services.remediation import store as remediation_store
from services.remediation.app import MIGRATIONS_DIR as REMEDIATION_MIGRATIONS
from services.remediation.config import RemediationSettings
from services.remediation.decisions import register_decisions
from services.remediation.domain import initial_status
from tests.integration.api_helpers import bearer, cost_actual, make_token, make_user, running_api
from tests.integration.api_seed import refresh_daily_costs, seed_cost_lines
from tests.integration.test_remediation_executor import command

pytestmark = pytest.mark.integration


async def test_a_viewer_reads_costs_and_the_summary_equal_to_cost_actual_to_the_cent(settings):
    await seed_cost_lines(settings.database_url)
    assert await refresh_daily_costs(settings.database_url) == 40  # the api reads the aggregate
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=20)).isoformat(), (today + timedelta(days=1)).isoformat()
    cli = cost_actual(settings, "--from", start, "--to", end, "--group-by", "service,account")
    cli_usd = cost_actual(settings, "--from", start, "--to", end, "--filter", "provider=AWS")
    async with running_api(settings) as (app, client):
        token = await make_token(app, "viewer")
        costs = await client.get(
            "/api/v1/costs",
            params={"from": start, "to": end, "group_by": "service,account"},
            headers=bearer(token),
        )
        assert costs.status_code == 200
        assert costs.json() == cli
        usd = await client.get(
            "/api/v1/costs",
            params={"from": start, "to": end, "filter": "provider=AWS"},
            headers=bearer(token),
        )
        assert usd.json() == cli_usd
        summary = (
            await client.get(
                "/api/v1/insights/summary", params={"from": start, "to": end}, headers=bearer(token)
            )
        ).json()
        totals = {t["currency"]: Decimal(t["totalCost"]) for t in summary["summary"]["totals"]}
        assert totals == {t["currency"]: Decimal(t["totalCost"]) for t in cli["summary"]["totals"]}
        assert (
            sum(Decimal(r["cost"]) for r in cli["results"] if r["currency"] == "USD")
            == totals["USD"]
        )
        assert Decimal(cli_usd["summary"]["totalCost"]) == totals["USD"]
        assert len({t["date"] for t in summary["trend"]}) == 21
        assert summary["topMovers"]["service"] and summary["previous"]["totals"]
        # month to date by default
        default = (await client.get("/api/v1/insights/summary", headers=bearer(token))).json()
        assert default["summary"]["from"].startswith(today.replace(day=1).isoformat())
        # the same token may not decide
        denied = await client.post(
            "/api/v1/remediation/commands/any/approve", json={"reason": "x"}, headers=bearer(token)
        )
        assert denied.status_code == 403
        assert (await client.get("/api/v1/costs")).status_code == 401
        bad = await client.get("/api/v1/costs", params={"group_by": "nope"}, headers=bearer(token))
        assert bad.status_code == 400


@pytest.fixture
async def remediation_decisions(settings):
    """Remediation's decision consumer alone (no planner, no executor), on the real broker."""
    rsettings = RemediationSettings.extending(settings)
    runtime = ServiceRuntime("remediation", rsettings)
    register_decisions(runtime, rsettings)
    app = runtime.app(REMEDIATION_MIGRATIONS)
    await app.start()
    try:
        yield runtime
    finally:
        await app.stop()


async def test_an_approver_approves_through_the_api_and_the_audit_names_the_user(
    settings, remediation_decisions
):
    pending = command(
        "stop-instance",
        "i-0abc",
        approval=True,
        expires_in=timedelta(days=1),
        issued_at=datetime.now(UTC),
    )
    second = command(
        "stop-instance",
        "i-0def",
        approval=True,
        expires_in=timedelta(days=1),
        issued_at=datetime.now(UTC),
    )
    async with remediation_store.transaction(remediation_decisions.pool) as conn:
        for each in (pending, second):
            await remediation_store.insert_command(
                conn, each, initial_status(each), actor="planner"
            )
    async with running_api(settings) as (app, client):
        await make_user(app, "alice", "approver", "alice-password")
        login = await client.post(
            "/login", data={"username": "alice", "password": "alice-password"}
        )
        assert login.status_code == 303
        csrf = (await client.get("/api/v1/session")).json()["csrf_token"]
        url = f"/api/v1/remediation/commands/{pending.command_id}/approve"
        assert (await client.post(url, json={"reason": "go"})).status_code == 403  # no CSRF token
        assert (
            await client.post(
                "/api/v1/remediation/commands/no-such/approve",
                json={},
                headers={"X-CSRF-Token": csrf},
            )
        ).status_code == 404
        answer = await client.post(
            url, json={"reason": "saves money"}, headers={"X-CSRF-Token": csrf}
        )
        assert answer.status_code in (200, 202), answer.text
        assert answer.json()["decision_id"]
        for _ in range(150):
            status = await client.get("/api/v1/remediation/commands", params={"status": "approved"})
            if [c for c in status.json()["commands"] if c["command_id"] == pending.command_id]:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the approval never showed in remediation.v_actions")
        audit = (
            await client.get(f"/api/v1/remediation/commands/{pending.command_id}/audit")
        ).json()["audit"]
        approved = [a for a in audit if a["event"] == "approved"]
        assert (
            approved
            and approved[0]["actor"] == "api:user:alice"
            and approved[0]["reason"] == "saves money"
        )
        again = await client.post(url, json={}, headers={"X-CSRF-Token": csrf})
        assert again.status_code == 409
        # the same through a token of alice's (`token create --user alice`): audited as alice
        alices = await make_token(app, "approver", user="alice")
        other_url = f"/api/v1/remediation/commands/{second.command_id}/approve"
        answer = await client.post(other_url, json={"reason": "also"}, headers=bearer(alices))
        assert answer.status_code in (200, 202), answer.text
        for _ in range(150):
            audit = (
                await client.get(
                    f"/api/v1/remediation/commands/{second.command_id}/audit",
                    headers=bearer(alices),
                )
            ).json()["audit"]
            approved = [a for a in audit if a["event"] == "approved"]
            if approved:
                break
            await asyncio.sleep(0.2)
        assert approved and approved[0]["actor"] == "api:user:alice", approved
