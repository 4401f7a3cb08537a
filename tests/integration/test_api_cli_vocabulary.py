"""The api speaks the CLI's vocabulary (docs/cli.md): filter values match whatever their case on
both cost paths (pricing's daily aggregate and the lines), a forecast horizon beyond the stored
days is refused with the limit, and savings and recommendations carry the CLI's JSON keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finfocus.db import connect, migrate_url
from schemas.reads import pricing as costq
from services.api import costs
from tests.integration.api_helpers import bearer, make_token, running_api
from tests.integration.api_seed import refresh_daily_costs, seed_cost_lines

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(days=10)
#: (group_by, mixed-case filters, the same filters as the data spells them)
QUERIES = [
    (
        "service,account",
        ["provider=aws", "service=amazonec2"],
        ["provider=AWS", "service=AmazonEC2"],
    ),
    (
        "daily",
        ["region=US-EAST-1", "service!=amazons3", "category=USAGE"],
        ["region=us-east-1", "service!=AmazonS3", "category=Usage"],
    ),
]


def cli_json(settings, *args: str) -> dict:
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_DATABASE_URL": settings.database_url,
    }
    env.pop("FINFOCUS_READER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cost_params(group_by: str, filters: list[str]) -> dict:
    return {
        "from": START.date().isoformat(),
        "to": END.date().isoformat(),
        "group_by": group_by,
        "filter": filters,
    }


async def test_mixed_case_filters_give_cost_actual_s_document_on_the_aggregate_and_the_line_path(
    settings,
):
    await seed_cost_lines(settings.database_url, start=START, days=12)
    assert await refresh_daily_costs(settings.database_url) == 12
    cli = {}
    for group_by, mixed, _exact in QUERIES:
        args = [
            "--from",
            START.date().isoformat(),
            "--to",
            END.date().isoformat(),
            "--group-by",
            group_by,
        ]
        cli[group_by] = cli_json(
            settings, "cost", "actual", *args, *(a for f in mixed for a in ("--filter", f))
        )
    async with running_api(settings) as (app, client):
        token = await make_token(app, "viewer")
        for dirty in (False, True):
            if dirty:  # a day waiting for a refresh: the lines answer
                conn = await connect(settings.database_url)
                try:
                    await conn.execute(
                        "INSERT INTO pricing.dirty_days (day) VALUES ($1)", START.date()
                    )
                finally:
                    await conn.close()
            async with app.state.ctx.reader() as conn:
                assert await costs.aggregate_ready(conn, START, END) is not dirty
            for group_by, mixed, exact in QUERIES:
                parsed = [costq.parse_filter(f) for f in mixed]
                assert costs.aggregate_allows(costq.parse_group_by(group_by), parsed, START, END)
                got = await client.get(
                    "/api/v1/costs", params=cost_params(group_by, mixed), headers=bearer(token)
                )
                assert got.status_code == 200, got.text
                assert got.json() == cli[group_by], (group_by, mixed, dirty)
                spelled = await client.get(
                    "/api/v1/costs", params=cost_params(group_by, exact), headers=bearer(token)
                )
                assert spelled.json() == got.json()
                assert got.json()["results"] and Decimal(got.json()["summary"]["totalCost"]) > 0


async def _seed_forecast(database_url: str, trained_through: date, days: int) -> None:
    """One stored series as the forecast service writes it: `days` points after trained_through."""
    await migrate_url(database_url, "forecast", ROOT / "services" / "forecast" / "migrations")
    conn = await connect(database_url)
    try:
        series_id = await conn.fetchval(
            "INSERT INTO forecast.series_forecasts (series_key, dims, grp, currency, model, "
            "trained_through, fingerprint) VALUES ('provider=AWS|USD', 'provider', "
            """'{"provider": "AWS"}'::jsonb, 'USD', 'seasonal-naive', $1, 'f') RETURNING series_id""",
            trained_through,
        )
        await conn.executemany(
            "INSERT INTO forecast.forecast_points VALUES ($1, $2, 10, 9, 11, 8, 12)",
            [(series_id, trained_through + timedelta(days=d)) for d in range(-2, days + 1)],
        )
    finally:
        await conn.close()


async def test_a_horizon_beyond_the_stored_days_is_refused_with_the_limit(settings):
    await _seed_forecast(settings.database_url, date(2026, 11, 30), days=5)
    async with running_api(settings) as (app, client):
        token = await make_token(app, "viewer")
        params = {"group_by": "provider", "filter": "provider=aws"}
        ok = await client.get(
            "/api/v1/forecasts", params={**params, "horizon": 5}, headers=bearer(token)
        )
        assert ok.status_code == 200, ok.text
        assert [len(f["points"]) for f in ok.json()["forecasts"]] == [5]
        far = await client.get(
            "/api/v1/forecasts", params={**params, "horizon": 6}, headers=bearer(token)
        )
        assert far.status_code == 400
        assert "beyond the 5 days forecast" in far.json()["detail"]
        assert "horizon 5 or less" in far.json()["detail"]


async def test_savings_and_recommendations_carry_the_cli_s_keys(settings):
    await migrate_url(
        settings.database_url, "remediation", ROOT / "services" / "remediation" / "migrations"
    )
    conn = await connect(settings.database_url)
    try:
        for i, (saving, currency) in enumerate([("12.50", "USD"), ("3.10", "USD"), ("7", "EUR")]):
            await conn.execute(
                "INSERT INTO remediation.recommendations (recommendation_id, rec_type, provider, "
                "account_id, resource_id, rationale, estimated_monthly_savings, currency) "
                "VALUES ($1, 'idle-address', 'AWS', '111', $2, 'unattached', $3, $4)",
                f"rec-{i}",
                f"eip-{i}",
                Decimal(saving),
                currency,
            )
            await conn.execute(
                "INSERT INTO remediation.commands (command_id, issued_at, action, provider, account_id, "
                "resource_id, mode, requires_approval, playbook, command, status, executed_at) "
                "VALUES ($1, now(), 'stop', 'AWS', '111', $2, 'execute', false, 'idle', '{}', 'executed', now())",
                f"cmd-{i}",
                f"i-{i}",
            )
            await conn.execute(
                "INSERT INTO remediation.savings (command_id, baseline_daily, after_daily, days_before, "
                "days_after, expected_monthly, realised_monthly, currency) VALUES ($1, 1, 0, 7, 7, $2, $3, $4)",
                f"cmd-{i}",
                Decimal(saving),
                None if i == 1 else Decimal(saving) / 2,
                currency,
            )
    finally:
        await conn.close()
    cli_savings = cli_json(settings, "savings", "report")
    cli_recommendations = cli_json(settings, "recommendations", "list")
    async with running_api(settings) as (app, client):
        token = await make_token(app, "viewer")
        savings = (await client.get("/api/v1/savings", headers=bearer(token))).json()
        recommendations = (
            await client.get("/api/v1/recommendations", headers=bearer(token))
        ).json()
    assert savings == cli_savings
    assert recommendations == cli_recommendations
    assert recommendations["recommendations"] and savings["actions"]
    for part in ("groups", "totals"):
        for row in savings[part]:
            assert {
                "expected_monthly",
                "realised_monthly",
                "expectedMonthly",
                "realisedMonthly",
            } <= set(row)
    assert {t["currency"]: t["estimated_monthly_savings"] for t in recommendations["totals"]} == {
        "EUR": "7",
        "USD": "15.60",
    }
    assert all(
        t["estimatedMonthlySavings"] == t["estimated_monthly_savings"]
        for t in recommendations["totals"]
    )
