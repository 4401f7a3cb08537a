"""The daily aggregate of cost lines (migration 0009): recompute the days the triggers marked.

Runs in pricing's background, one small transaction per batch of days: the marks are taken
first (a day marked again meanwhile stays marked for the next round), then the days are
rebuilt from the lines as they are now.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

logger = logging.getLogger(__name__)

TAKE_DAYS = """
DELETE FROM pricing.dirty_days WHERE day IN (
    SELECT day FROM pricing.dirty_days ORDER BY day LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING day"""

CLEAR_DAYS = "DELETE FROM pricing.daily_costs WHERE day = ANY($1::date[])"

REBUILD_DAYS = """
INSERT INTO pricing.daily_costs
SELECT (charge_period_start AT TIME ZONE 'UTC')::date, provider, billing_account_id, sub_account_id,
       service_name, service_category, region_id, charge_category, billing_currency, price_source,
       billing_scope, billing_scope_version, count(*),
       sum(billed_cost), count(*) FILTER (WHERE billed_cost IS NULL),
       sum(effective_cost), count(*) FILTER (WHERE effective_cost IS NULL),
       sum(list_cost), count(*) FILTER (WHERE list_cost IS NULL),
       sum(contracted_cost), count(*) FILTER (WHERE contracted_cost IS NULL)
FROM pricing.cost_lines
WHERE charge_period_start >= (SELECT min(d) FROM unnest($1::date[]) d)::timestamp AT TIME ZONE 'UTC'
  AND charge_period_start < ((SELECT max(d) FROM unnest($1::date[]) d) + 1)::timestamp AT TIME ZONE 'UTC'
  AND (charge_period_start AT TIME ZONE 'UTC')::date = ANY($1::date[])
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"""


CLEAR_ROLLUPS = "DELETE FROM pricing.daily_rollups WHERE day = ANY($1::date[])"

REBUILD_ROLLUPS = """
INSERT INTO pricing.daily_rollups
SELECT d.day, CASE WHEN GROUPING(d.service_name) = 0 THEN 'service' ELSE 'account' END,
       coalesce(d.service_name, coalesce(d.sub_account_id, d.billing_account_id)),
       d.billing_currency, sum(d.billed_cost), sum(d.lines), sum(d.billed_nulls)
FROM pricing.daily_costs d
LEFT JOIN pricing.billing_scopes s ON s.billing_scope = d.billing_scope
WHERE d.day = ANY($1::date[])
  AND (d.billing_scope IS NULL OR coalesce(d.billing_scope_version, 0) >= s.latest_version)
GROUP BY GROUPING SETS ((d.day, d.service_name, d.billing_currency),
                        (d.day, coalesce(d.sub_account_id, d.billing_account_id), d.billing_currency))"""


COUNT_DAYS = "SELECT count(*) FROM pricing.dirty_days"


async def refresh(conn: asyncpg.Connection, days_per_round: int = 7, due: int | None = None) -> int:
    """Rebuild the days marked when it starts (as many rounds as that takes); returns how
    many days were rebuilt. Days marked meanwhile wait for the next call: during a long
    import every batch marks its days again, and rebuilding until none is left never ended
    (the aggregate ran back to back for a whole 5M-row import instead of a share of it).
    `due`: at most this many days (whole rounds), instead of those marked at the start."""
    rebuilt = 0
    if due is None:
        due = int(await conn.fetchval(COUNT_DAYS))
    while rebuilt < due:
        async with conn.transaction():
            days = [r["day"] for r in await conn.fetch(TAKE_DAYS, days_per_round)]
            if not days:
                return rebuilt
            await conn.execute(CLEAR_DAYS, days)
            await conn.execute(REBUILD_DAYS, days)
            await conn.execute(CLEAR_ROLLUPS, days)
            await conn.execute(REBUILD_ROLLUPS, days)
        rebuilt += len(days)
    return rebuilt


async def refresh_forever(pool: asyncpg.Pool, period_s: float = 2.0, share: float = 0.2) -> None:
    """Pricing's background task: keep the aggregate caught up a few seconds behind. After a
    rebuild that took T seconds it waits T / share (at least `period_s`, at most a minute), so during a large
    import the rebuilds take at most about `share` of one database connection's time."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            async with pool.acquire() as conn:
                await refresh(conn)
        except asyncio.CancelledError:
            raise
        except (OSError, asyncpg.PostgresError):
            logger.warning("daily aggregate refresh failed; retrying", exc_info=True)
        await asyncio.sleep(min(60.0, max(period_s, (loop.time() - started) / share)))
