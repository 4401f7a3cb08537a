"""The daily cost of one dimension value (an anomaly's series), read from `pricing.v_cost_lines`
through the read-only role: `finfocus anomalies show` draws it as a sparkline.

The dimension names are the FOCUS columns the anomaly monitors use (`ProviderName`,
`SubAccountId`, `ServiceName`, ..., `tag:KEY`); each maps to a whitelisted SQL expression and the
values are bound, never spliced. Recurring charges are left out, as the detectors leave them out.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

VIEW = "pricing.v_cost_lines"

#: FOCUS dimension -> SQL expression over the view (the only SQL a caller can pick)
COLUMNS: dict[str, str] = {
    "ProviderName": "provider",
    "BillingAccountId": "billing_account_id",
    "SubAccountId": "coalesce(sub_account_id, billing_account_id)",
    "ServiceName": "service_name",
    "ServiceCategory": "service_category",
    "RegionId": "region_id",
    "ResourceType": "resource_type",
    "ResourceId": "resource_id",
    "SkuId": "sku_id",
    "ChargeCategory": "charge_category",
}


def daily_query(dimension: dict[str, str], start: date, end: date) -> tuple[str, list] | None:
    """SQL for the daily non-recurring billed cost of `dimension` over [start, end); None when a
    dimension name has no column (its series cannot be read here)."""
    params: list[object] = [start, end]
    conds = [
        "charge_period_start >= $1::date",
        "charge_period_start < $2::date",
        "charge_frequency IS DISTINCT FROM 'Recurring'",
    ]
    for key, value in dimension.items():
        if key.startswith("tag:"):
            params.append(key[4:])
            expr = f"(tags ->> ${len(params)}::text)"
        elif key in COLUMNS:
            expr = COLUMNS[key]
        else:
            return None
        params.append(value)
        conds.append(f"{expr} = ${len(params)}::text")
    sql = (
        f"SELECT (charge_period_start AT TIME ZONE 'UTC')::date AS day, sum(coalesce(billed_cost, 0)) AS cost "
        f"FROM {VIEW} WHERE {' AND '.join(conds)} GROUP BY 1 ORDER BY 1"
    )
    return sql, params


def fill_days(
    rows: list[tuple[date, Decimal]], start: date, end: date
) -> list[tuple[date, Decimal]]:
    """Every day of [start, end), 0 where no line was billed."""
    by_day = dict(rows)
    days = (end - start).days
    return [
        (start + timedelta(d), by_day.get(start + timedelta(d), Decimal(0)))
        for d in range(max(days, 0))
    ]


async def daily_costs(
    conn, dimension: dict[str, str], start: date, end: date
) -> list[tuple[date, Decimal]] | None:
    """The series on an open read-only connection; None when it cannot be read."""
    query = daily_query(dimension, start, end)
    if query is None:
        return None
    sql, params = query
    rows = await conn.fetch(sql, *params)
    return fill_days([(r["day"], r["cost"]) for r in rows], start, end)
