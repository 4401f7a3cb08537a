"""`GET /api/v1/insights/summary`: the overview in one document, for a window (default: this
month to date, UTC): totals by currency, the previous period of the same length, the
month-end forecast with its 95 % range, budgets and their state, open anomalies by severity,
realised savings, the daily trend and the top movers by service and account.

Every figure comes from the services' views through the reader role; cost figures use the
same queries as `finfocus cost actual`, so `summary` equals `cost actual` for the window.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from schemas.reads import pricing as costq
from services.api import costs as costs_query
from services.api.auth import Viewer
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse
from services.api.routes.reads import budget_rows, savings_groups, savings_rows, window

router = APIRouter(
    prefix="/api/v1",
    default_response_class=MoneyJSONResponse,
    responses=COMMON_RESPONSES,
    tags=["insights"],
)

TOP_MOVERS = 5
OPEN_STATUSES = ["open", "ongoing"]


def month_to_date(now: datetime) -> tuple[datetime, datetime]:
    """[first of this month, tomorrow 00:00) in UTC: today's lines count."""
    today = now.astimezone(UTC).date()
    start = datetime.combine(today.replace(day=1), time(), UTC)
    return start, datetime.combine(today + timedelta(days=1), time(), UTC)


def budget_state(b: dict) -> str:
    amount = b["amount"]
    if b["actual_to_date"] is not None and b["actual_to_date"] >= amount:
        return "over"
    if b["projected"] is not None and b["projected"] > amount:
        return "forecast-over"
    return "ok"


def movers(current: list[dict], previous: list[dict], key: str) -> list[dict]:
    """Biggest changes against the previous period, per currency (never added across)."""
    before = {(r["group"][key], r["currency"]): Decimal(r["cost"]) for r in previous}
    now = {(r["group"][key], r["currency"]): Decimal(r["cost"]) for r in current}
    out = []
    for k in set(before) | set(now):
        a, b = before.get(k, Decimal(0)), now.get(k, Decimal(0))
        if a == b:
            continue
        out.append(
            {
                key: k[0],
                "currency": k[1],
                "cost": b,
                "previousCost": a,
                "change": b - a,
                "changePct": None if a == 0 else ((b - a) / abs(a) * 100).quantize(Decimal("0.1")),
            }
        )
    out.sort(key=lambda m: (-abs(m["change"]), str(m[key])))
    return out[:TOP_MOVERS]


async def _grouped(ctx, start, end, group_by: list[str], aggregate: bool) -> list[dict]:
    (rsql, rparams), _ = costs_query.queries(
        group_by, "billed", start, end, [], aggregate=aggregate
    )
    async with ctx.reader() as conn:
        return [costq.result_of(r, group_by) for r in await conn.fetch(rsql, *rparams)]


async def _totals(ctx, start, end, aggregate: bool) -> dict:
    _, (tsql, tparams) = costs_query.queries([], "billed", start, end, [], aggregate=aggregate)
    async with ctx.reader() as conn:
        totals = [dict(r) for r in await conn.fetch(tsql, *tparams)]
    return costq.summary_of(totals, start, end, "billed", [])


async def _costs(ctx, prev_start, start, end) -> tuple:
    """(summary, previous summary, daily, by service now and before, by account now and
    before): one scan of pricing's daily aggregate where it can answer, else the lines."""
    if costs_query.aggregate_allows(["daily"], [], prev_start, end):
        async with ctx.reader() as conn:
            if await costs_query.aggregate_ready(conn, prev_start, end):
                o = await costs_query.overview(conn, prev_start, start, end)

                def results(part: str, name: str) -> list[dict]:
                    return [costq.result_of(r, [name]) for r in o[part]]

                daily = results("daily", "daily")
                by_service = results("service", "service"), results("previous_service", "service")
                by_account = results("account", "account"), results("previous_account", "account")
                return (
                    costq.summary_of(o["totals"], start, end, "billed", []),
                    costq.summary_of(o["previous_totals"], prev_start, start, "billed", []),
                    daily,
                    *by_service,
                    *by_account,
                )
    return tuple(
        await asyncio.gather(
            _totals(ctx, start, end, False),
            _totals(ctx, prev_start, start, False),
            _grouped(ctx, start, end, ["daily"], False),
            _grouped(ctx, start, end, ["service"], False),
            _grouped(ctx, prev_start, start, ["service"], False),
            _grouped(ctx, start, end, ["account"], False),
            _grouped(ctx, prev_start, start, ["account"], False),
        )
    )


async def _forecast(ctx, end: datetime) -> list[dict]:
    """Month-end projection of the total (the month `to` falls in), per currency."""
    async with ctx.reader() as conn:
        rows = await conn.fetch(
            "SELECT currency, trained_through, period_start, period_end, actual_to_date, "
            "forecast_remainder, projected, lo_95, hi_95 FROM forecast.v_month_end "
            "WHERE dims = '' AND period_start <= $1 ORDER BY period_start DESC, currency",
            (end - timedelta(microseconds=1)).date(),
        )
    latest = rows[0]["period_start"] if rows else None
    return [
        {
            "currency": r["currency"],
            "periodStart": r["period_start"],
            "periodEnd": r["period_end"],
            "trainedThrough": r["trained_through"],
            "actualToDate": r["actual_to_date"],
            "forecastRemainder": r["forecast_remainder"],
            "projected": r["projected"],
            "lo95": r["lo_95"],
            "hi95": r["hi_95"],
        }
        for r in rows
        if r["period_start"] == latest
    ]


async def _anomalies(ctx) -> dict:
    async with ctx.reader() as conn:
        rows = await conn.fetch(
            "SELECT severity, count(*) AS n FROM anomaly.v_anomalies WHERE status = ANY($1::text[]) "
            "GROUP BY severity",
            OPEN_STATUSES,
        )
    by = {s: 0 for s in ("low", "medium", "high", "critical")}
    by.update({r["severity"]: r["n"] for r in rows})
    return {"open": sum(by.values()), "bySeverity": by}


async def _optional(coro, default: Any) -> Any:
    """A part whose service has not created its views yet is empty, not an error: the
    overview must show the costs it has."""
    import asyncpg

    try:
        return await coro
    except (
        asyncpg.UndefinedTableError,
        asyncpg.InvalidSchemaNameError,
        asyncpg.UndefinedColumnError,
    ):
        return default


@router.get("/insights/summary", summary="The overview for a window (default month to date)")
async def insights_summary(
    request: Request,
    who: Viewer,
    start: Annotated[
        str | None, Query(alias="from", description="YYYY-MM-DD or RFC 3339, inclusive")
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="YYYY-MM-DD or RFC 3339, exclusive")
    ] = None,
) -> dict:
    ctx = request.app.state.ctx
    default_start, default_end = month_to_date(datetime.now(UTC))
    start_at, end_at = window(start, end)
    start_at = start_at or (
        default_start if end_at is None else end_at - (default_end - default_start)
    )
    end_at = end_at or (
        default_end if start is None else max(default_end, start_at + timedelta(days=1))
    )
    if end_at <= start_at:
        end_at = start_at + timedelta(days=1)
    length = end_at - start_at
    prev_start = start_at - length
    costs, forecast, budgets, anomalies, savings = await asyncio.gather(
        _costs(ctx, prev_start, start_at, end_at),
        _optional(_forecast(ctx, end_at), []),
        _optional(budget_rows(ctx), []),
        _optional(_anomalies(ctx), {"open": 0, "bySeverity": {}}),
        _optional(savings_rows(ctx), []),
    )
    summary, previous, daily, services_now, services_before, accounts_now, accounts_before = costs
    for key in ("metric", "groupBy"):
        summary.pop(key, None)
        previous.pop(key, None)
    return {
        "summary": summary,
        "previous": previous,
        "forecast": {"monthEnd": forecast},
        "budgets": [{**b, "state": budget_state(b)} for b in budgets],
        "anomalies": anomalies,
        "savings": {
            "realised": [
                {
                    "currency": g["currency"],
                    "realisedMonthly": g["realisedMonthly"],
                    "expectedMonthly": g["expectedMonthly"],
                    "actions": g["actions"],
                }
                for g in savings_groups(savings, [])
            ]
        },
        "trend": [
            {"date": r["group"]["daily"], "cost": r["cost"], "currency": r["currency"]}
            for r in daily
        ],
        "topMovers": {
            "service": movers(services_now, services_before, "service"),
            "account": movers(accounts_now, accounts_before, "account"),
        },
    }
