"""Cost queries: the CLI's `cost actual` queries over `pricing.v_cost_lines`, or the same
figures from pricing's daily aggregate (`pricing.v_daily_costs`) when the query allows it.

The aggregate is used only when every group-by and filter is a column it keeps, the window
falls on UTC day boundaries and none of its days waits for a refresh (`pricing.v_dirty_days`):
then its sums are the lines' sums exactly (numeric addition), so both paths give the same
document to the cent. Filter values compare as the CLI compares them (`schemas.reads.vocab`:
provider aliases, case-insensitive) on both paths. Anything else (tags, resources, times of day) reads the lines.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import asyncpg

from schemas.reads import pricing as costq
from schemas.reads.vocab import folded

AGGREGATE = "pricing.v_daily_costs"
DIMENSIONS = {
    "provider": "provider",
    "service": "service_name",
    "account": "coalesce(sub_account_id, billing_account_id)",
    "billing-account": "billing_account_id",
    "region": "region_id",
    "category": "charge_category",
    "service-category": "service_category",
    "currency": "billing_currency",
    "price-source": "price_source",
}
BUCKETS = {"daily": "to_char(day, 'YYYY-MM-DD')", "monthly": "to_char(day, 'YYYY-MM')"}
NULLS = {
    "billed": "billed_nulls",
    "effective": "effective_nulls",
    "list": "list_nulls",
    "contracted": "contracted_nulls",
}


def _midnight(when: datetime | None) -> bool:
    return when is None or when.utcoffset() == timedelta(0) and when.time() == time()


def aggregate_allows(
    group_by: list[str], filters: list, start: datetime | None, end: datetime | None
) -> bool:
    return (
        all(g in DIMENSIONS or g in BUCKETS for g in group_by)
        and all(f.key in DIMENSIONS for f in filters)
        and _midnight(start)
        and _midnight(end)
    )


def aggregate_queries(
    group_by: list[str], metric: str, start: datetime | None, end: datetime | None, filters: list
) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """The CLI's (results, totals) queries, over the daily aggregate."""
    column, nulls = costq.METRICS[metric], NULLS[metric]

    def where(q: costq.Query) -> str:
        conds: list[str] = []
        if start is not None:
            conds.append(f"day >= {q.bind(start.date())}")
        if end is not None:
            conds.append(f"day < {q.bind(end.date())}")
        # the lines' comparison (schemas.reads.pricing.where_clause): lower(column) against the
        # vocabulary's folded value, so both paths select the same rows whatever the case
        equal: dict[str, list[str]] = {}
        for f in filters:
            if f.negate:
                conds.append(
                    f"lower({DIMENSIONS[f.key]}) IS DISTINCT FROM "
                    f"{q.bind(folded(f.key, f.value))}::text"
                )
            else:
                equal.setdefault(f.key, []).append(folded(f.key, f.value))
        for key, values in equal.items():
            conds.append(f"lower({DIMENSIONS[key]}) = ANY({q.bind(values)}::text[])")
        return ("WHERE " + " AND ".join(conds)) if conds else ""

    sums = f"sum({column}) AS cost, sum(lines)::bigint AS lines, sum({nulls})::bigint AS unpriced"
    q = costq.Query()
    selects = [
        f"{DIMENSIONS.get(name) or BUCKETS[name]} AS g{i}" for i, name in enumerate(group_by)
    ]
    keys = ", ".join(str(i + 1) for i in range(len(group_by) + 1))
    results = (
        f"SELECT {', '.join([*selects, 'billing_currency AS currency'])}, {sums} "
        f"FROM {AGGREGATE} {where(q)} GROUP BY {keys} ORDER BY {keys}"
    )
    t = costq.Query()
    totals = (
        f"SELECT billing_currency AS currency, {sums} FROM {AGGREGATE} {where(t)} "
        "GROUP BY 1 ORDER BY 1"
    )
    return (results, q.params), (totals, t.params)


async def aggregate_ready(
    conn: asyncpg.Connection, start: datetime | None, end: datetime | None
) -> bool:
    """True when pricing's aggregate is there and no day of [start, end) waits for a refresh."""
    try:
        return not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pricing.v_dirty_days WHERE ($1::date IS NULL OR day >= $1) "
            "AND ($2::date IS NULL OR day < $2))",
            start.date() if start else None,
            end.date() if end else None,
        )
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):
        return False


def queries(group_by: list[str], metric: str, start, end, filters: list, *, aggregate: bool):
    if aggregate and aggregate_allows(group_by, filters, start, end):
        return aggregate_queries(group_by, metric, start, end, filters)
    return costq.actual_queries(group_by, metric, start, end, filters)


async def document(ctx, start, end, group_by: list[str], filters: list, metric: str) -> dict:
    """`finfocus cost actual --output json` for the same query."""
    async with ctx.reader() as conn:
        use = aggregate_allows(group_by, filters, start, end) and await aggregate_ready(
            conn, start, end
        )
        (rsql, rparams), (tsql, tparams) = queries(
            group_by, metric, start, end, filters, aggregate=use
        )
        totals = [dict(r) for r in await conn.fetch(tsql, *tparams)]
        rows = await conn.fetch(rsql, *rparams)
    return {
        "summary": costq.summary_of(totals, start, end, metric, group_by),
        "results": [costq.result_of(r, group_by) for r in rows],
    }


ROLLUPS = "pricing.v_daily_rollups"

OVERVIEW = f"""
SELECT day >= $2 AS current, dim,
       GROUPING(day) = 0 AS by_day, GROUPING(key) = 0 AS by_key,
       to_char(day, 'YYYY-MM-DD') AS day_text, key, billing_currency AS currency,
       sum(billed_cost) AS cost, sum(lines)::bigint AS lines, sum(billed_nulls)::bigint AS unpriced
FROM {ROLLUPS}
WHERE day >= $1 AND day < $3
GROUP BY GROUPING SETS (
    (day >= $2, dim, billing_currency),
    (day >= $2, dim, day, billing_currency),
    (day >= $2, dim, key, billing_currency))"""


async def overview(
    conn: asyncpg.Connection, previous_start: datetime, start: datetime, end: datetime
) -> dict[str, list[dict]]:
    """The insights' cost parts from pricing's daily rollups (a few dozen rows a day):
    totals of the window and of the previous period, the daily trend and the costs by
    service and by account of both, as the rows `cost actual`'s queries would give (same
    keys, same order). Totals and days come from the by-service rollup: every line has
    exactly one service, so its sums are the sums of the lines."""
    rows = await conn.fetch(OVERVIEW, previous_start.date(), start.date(), end.date())
    out: dict[str, list[dict]] = {
        k: []
        for k in (
            "totals",
            "previous_totals",
            "daily",
            "service",
            "previous_service",
            "account",
            "previous_account",
        )
    }
    for r in rows:
        prefix = "" if r["current"] else "previous_"
        sums = {
            "currency": r["currency"],
            "cost": r["cost"],
            "lines": r["lines"],
            "unpriced": r["unpriced"],
        }
        if r["by_key"]:
            out[prefix + r["dim"]].append({"g0": r["key"], **sums})
        elif r["dim"] != "service":
            continue
        elif r["by_day"]:
            if r["current"]:
                out["daily"].append({"g0": r["day_text"], **sums})
        else:
            out[prefix + "totals"].append(sums)
    for key, rows_ in out.items():
        rows_.sort(key=lambda r: (r["currency"],) if "totals" in key else (r["g0"], r["currency"]))
    return out
