"""Pricing's daily aggregate gives the same cost documents as the lines, and is not used for
a window whose days wait for a refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from finfocus.db import create_pool
from schemas.reads import pricing as costq
from services.api import costs
from services.pricing.store import PricingStore
from tests.integration.api_helpers import running_api
from tests.integration.api_seed import lines, refresh_daily_costs, seed_cost_lines

pytestmark = pytest.mark.integration

QUERIES = [
    ([], [], "billed"),
    (["service", "account"], [], "billed"),
    (["daily"], ["provider=AWS"], "effective"),
    (["monthly", "currency"], ["service!=AmazonS3"], "list"),
    (["provider", "region"], ["account=111111111111", "account=222222222222"], "billed"),
]


async def _both(ctx, group_by, filters, metric, start, end):
    parsed = [costq.parse_filter(f) for f in filters]
    out = []
    async with ctx.reader() as conn:
        for aggregate in (True, False):
            (rsql, rp), (tsql, tp) = costs.queries(
                group_by, metric, start, end, parsed, aggregate=aggregate
            )
            totals = [dict(r) for r in await conn.fetch(tsql, *tp)]
            rows = await conn.fetch(rsql, *rp)
            out.append(
                {
                    "summary": costq.summary_of(totals, start, end, metric, group_by),
                    "results": [costq.result_of(r, group_by) for r in rows],
                }
            )
    return out


async def test_the_daily_aggregate_answers_exactly_what_the_lines_answer(settings):
    start = datetime(2026, 10, 1, tzinfo=UTC)
    await seed_cost_lines(settings.database_url, start=start, days=45)
    assert await refresh_daily_costs(settings.database_url) == 45
    async with running_api(settings) as (app, _client):
        ctx = app.state.ctx
        for window in [(None, None), (start + timedelta(days=3), start + timedelta(days=33))]:
            for group_by, filters, metric in QUERIES:
                assert costs.aggregate_allows(
                    group_by, [costq.parse_filter(f) for f in filters], *window
                )
                via_aggregate, via_lines = await _both(ctx, group_by, filters, metric, *window)
                assert via_aggregate == via_lines, (group_by, filters, metric, window)
        assert not costs.aggregate_allows(["tag:team"], [], None, None)
        assert not costs.aggregate_allows([], [], start + timedelta(hours=1), None)

        # a restated line marks its day: the aggregate is not used for it until refreshed
        async with ctx.reader() as conn:
            assert await costs.aggregate_ready(conn, start, start + timedelta(days=45))
        changed = lines(start, 1)[0].model_copy(update={"BilledCost": Decimal("999.99")})
        pool = await create_pool(settings.database_url)
        try:
            await PricingStore(SimpleNamespace(pool=pool)).store_batch(
                [(changed.x_RecordId, changed.model_dump_json())], []
            )
        finally:
            await pool.close()
        async with ctx.reader() as conn:
            assert not await costs.aggregate_ready(conn, start, start + timedelta(days=2))
            assert await costs.aggregate_ready(
                conn, start + timedelta(days=1), start + timedelta(days=2)
            )
        doc = await costs.document(ctx, start, start + timedelta(days=1), [], [], "billed")
        assert await refresh_daily_costs(settings.database_url) == 1
        assert await costs.document(ctx, start, start + timedelta(days=1), [], [], "billed") == doc
        via_aggregate, via_lines = await _both(
            ctx, [], [], "billed", start, start + timedelta(days=1)
        )
        assert via_aggregate == via_lines


async def test_the_overview_from_the_aggregate_equals_the_overview_from_the_lines(settings):
    from finfocus.db import connect
    from services.api.routes.insights import _costs

    start = datetime(2026, 10, 1, tzinfo=UTC)
    await seed_cost_lines(settings.database_url, start=start, days=45)
    await refresh_daily_costs(settings.database_url)
    async with running_api(settings) as (app, _client):
        window = (start + timedelta(days=5), start + timedelta(days=20), start + timedelta(days=35))
        via_aggregate = await _costs(app.state.ctx, *window)
        conn = await connect(settings.database_url)
        try:  # a day waiting for a refresh: the lines answer
            await conn.execute("INSERT INTO pricing.dirty_days (day) VALUES ($1)", window[1].date())
        finally:
            await conn.close()
        via_lines = await _costs(app.state.ctx, *window)
    assert list(via_aggregate) == list(via_lines)
    assert via_aggregate[0]["totals"] and via_aggregate[2] and via_aggregate[3]
