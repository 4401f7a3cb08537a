"""Pricing's daily aggregate stays exact when a refresh runs while another transaction writes
lines of a day that is already marked (two pricing instances, or one instance's writers and
its background refresh).

Two connections, no timing: a writer stores a line of an already-marked day and keeps its
transaction open; a refresh (what either instance's background task runs) then commits; the
writer commits after it. The day must still be marked, so the next refresh adds the line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from services.pricing.aggregate import refresh
from tests.integration.api_seed import refresh_daily_costs, seed_cost_lines

pytestmark = pytest.mark.integration

DAY = datetime(2026, 10, 1, tzinfo=UTC)

COPY_LINE = """
INSERT INTO pricing.cost_lines
SELECT $2, provider, billing_account_id, sub_account_id, service_name, service_category,
       region_id, resource_id, resource_type, sku_id, charge_category, charge_frequency,
       charge_period_start, charge_period_end, billing_currency, $3, effective_cost, list_cost,
       contracted_cost, consumed_quantity, consumed_unit, pricing_quantity, pricing_unit, tags,
       price_source, billing_scope, billing_scope_version, import_job_id, priced_at, record
FROM pricing.cost_lines WHERE record_id = $1"""


async def by_day(conn: asyncpg.Connection) -> tuple[dict, dict]:
    lines = await conn.fetch(
        "SELECT (charge_period_start AT TIME ZONE 'UTC')::date, sum(billed_cost), count(*)"
        " FROM pricing.cost_lines GROUP BY 1"
    )
    aggregate = await conn.fetch(
        "SELECT day, sum(billed_cost), sum(lines) FROM pricing.daily_costs GROUP BY 1"
    )
    return (
        {r[0]: (r[1], r[2]) for r in lines},
        {r[0]: (r[1], r[2]) for r in aggregate},
    )


async def test_a_refresh_between_a_writers_line_and_its_commit_leaves_the_day_marked(
    database_url: str,
):
    await seed_cost_lines(database_url, start=DAY, days=2)
    assert await refresh_daily_costs(database_url) == 2
    writer = await asyncpg.connect(database_url)
    other = await asyncpg.connect(database_url)
    refresher = await asyncpg.connect(database_url)
    try:
        # the day is marked by an earlier, committed write (a restated line)
        await other.execute(
            "UPDATE pricing.cost_lines SET billed_cost = billed_cost + 1 WHERE record_id = 'rec-0-0-0'"
        )
        assert await other.fetchval("SELECT count(*) FROM pricing.dirty_days") == 1
        tx = writer.transaction()
        await tx.start()
        await writer.execute(COPY_LINE, "rec-0-0-0", "rec-extra", Decimal("12.34"))
        # a refresh commits while the writer's line is not committed yet
        await refresh(refresher)
        await tx.commit()
        lines, aggregate = await by_day(refresher)
        assert aggregate != lines  # that refresh could not count the line: it was not committed
        marked = await refresher.fetchval("SELECT count(*) FROM pricing.dirty_days")
        assert marked == 1, "the writer's day lost its mark: its line would never be aggregated"
        await refresh(refresher)
        lines, aggregate = await by_day(refresher)
        assert aggregate == lines
        assert await refresher.fetchval("SELECT count(*) FROM pricing.dirty_days") == 0
    finally:
        for conn in (writer, other, refresher):
            await conn.close()


async def test_a_refresh_rebuilds_the_days_marked_when_it_started_and_no_more(database_url: str):
    """Every batch of a long import marks its days again: a refresh that ran until no day
    was marked never ended, and the aggregate took a connection for the whole import."""
    await seed_cost_lines(database_url, start=DAY, days=5)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pricing.dirty_days") == 5
        # the bound: two rounds of two days, then it returns with one day still marked
        assert await refresh(conn, days_per_round=2, due=3) == 4
        assert await conn.fetchval("SELECT count(*) FROM pricing.dirty_days") == 1
        # by default, the days marked at its start: here the one left
        assert await refresh(conn, days_per_round=2) == 1
        lines, aggregate = await by_day(conn)
        assert aggregate == lines
    finally:
        await conn.close()
