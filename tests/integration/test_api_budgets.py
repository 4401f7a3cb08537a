"""Budgets through the api: an admin's change travels as a BudgetCommand signed `api`, the
forecast service applies it and audits the person; lesser roles get 403."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.forecast.app import build_app as build_forecast
from tests.integration.api_helpers import bearer, make_token, running_api
from tests.integration.test_forecast_service import forecast_settings

pytestmark = pytest.mark.integration


async def test_an_admin_sets_and_deletes_a_budget_and_the_forecast_audit_names_the_token(settings):
    forecast = build_forecast(forecast_settings(settings))
    await forecast.start()
    try:
        async with running_api(settings, api_decision_wait_s=15) as (app, client):
            admin, approver = await make_token(app, "admin"), await make_token(app, "approver")
            body = {
                "amount": "1000.50",
                "currency": "usd",
                "thresholds": [{"kind": "actual", "percent": "80"}],
            }
            assert (
                await client.put("/api/v1/budgets/team-a", json=body, headers=bearer(approver))
            ).status_code == 403
            put = await client.put("/api/v1/budgets/team-a", json=body, headers=bearer(admin))
            assert put.status_code == 200, put.text
            got = (await client.get("/api/v1/budgets/team-a", headers=bearer(approver))).json()
            assert got["amount"] == "1000.50" and got["currency"] == "USD"
            listed = (await client.get("/api/v1/budgets", headers=bearer(approver))).json()[
                "budgets"
            ]
            assert [b["name"] for b in listed] == ["team-a"]
            assert (
                await client.delete("/api/v1/budgets/team-a", headers=bearer(admin))
            ).status_code == 200
            assert (
                await client.delete("/api/v1/budgets/team-a", headers=bearer(admin))
            ).status_code == 404
            me = (await client.get("/api/v1/session", headers=bearer(admin))).json()["name"]
        conn = await asyncpg.connect(settings.database_url)
        try:
            for _ in range(50):
                audit = await conn.fetch(
                    "SELECT action, actor FROM forecast.v_budget_audit ORDER BY audit_id"
                )
                if len(audit) == 2:
                    break
                await asyncio.sleep(0.2)
            assert [tuple(r) for r in audit] == [
                ("set", f"api:token:{me}"),
                ("delete", f"api:token:{me}"),
            ]
        finally:
            await conn.close()
    finally:
        await forecast.stop()
