"""A batch touching many series evaluates them a chunk at a time (bounded memory): the
anomalies, walk states and points must be the same whatever the chunk size."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import services.anomaly as anomaly_pkg
from finfocus.db import create_pool, migrate_url
from services.anomaly.domain import CostLine, Monitor
from services.anomaly.engine import Evaluator
from services.anomaly.store import AnomalyStore

pytestmark = pytest.mark.integration

MONITORS = [Monitor("services", ("ProviderName", "SubAccountId", "ServiceName"))]
DAY0 = date(2025, 3, 1)
DAYS = 40
TABLES = ("cost_lines", "series_points", "series_state", "anomalies", "scope_versions")


class _Runtime:
    def __init__(self, pool) -> None:
        self.pool = pool


def batches() -> list[list[CostLine]]:
    """12 series over 40 days, two of them with a spike, sent in 4 batches of 10 days."""
    rng = random.Random(7)
    out: list[list[CostLine]] = []
    for b in range(4):
        batch = []
        for d in range(b * 10, b * 10 + 10):
            day = DAY0 + timedelta(days=d)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            for s in range(12):
                cost = Decimal(100 + s) + Decimal(rng.randrange(0, 300)) / 100
                if s in (3, 8) and d == 33:
                    cost *= 9  # the spike
                batch.append(
                    CostLine(
                        record_id=f"r{s}-{d}",
                        provider="AWS",
                        billing_account_id="999",
                        account=f"a{s % 4}",
                        service_name=f"svc{s}",
                        currency="USD",
                        day=day,
                        period_end=start + timedelta(days=1),
                        cost=cost,
                    )
                )
        out.append(batch)
    return out


async def run(pool, evaluator: Evaluator) -> tuple[dict, int]:
    async with pool.acquire() as conn:
        await conn.execute(f"TRUNCATE {', '.join(f'anomaly.{t}' for t in TABLES)}")
    store = AnomalyStore(_Runtime(pool))
    published = 0
    for batch in batches():
        async with store.transaction() as tx:
            published += len(await evaluator.process(tx, batch))
    async with pool.acquire() as conn:
        snapshot = {
            "points": sorted(
                tuple(r)
                for r in await conn.fetch(
                    "SELECT series_key, day, cost, high FROM anomaly.series_points"
                )
            ),
            "states": sorted(
                tuple(r)
                for r in await conn.fetch(
                    "SELECT series_key, start_day, fingerprint, steps, arrays FROM anomaly.series_state"
                )
            ),
            "anomalies": sorted(
                (r["anomaly_id"], r["status"], str(r["impact"]), r["series_key"])
                for r in await conn.fetch("SELECT * FROM anomaly.anomalies")
            ),
        }
    return snapshot, published


async def test_chunked_evaluation_matches_one_chunk(database_url):
    await migrate_url(database_url, "anomaly", Path(anomaly_pkg.__file__).parent / "migrations")
    pool = await create_pool(database_url)
    clock = lambda: datetime(2025, 4, 15, tzinfo=UTC)  # noqa: E731
    try:
        whole, n_whole = await run(pool, Evaluator(lambda: MONITORS, clock=clock))
        chunked, n_chunked = await run(
            pool, Evaluator(lambda: MONITORS, clock=clock, series_chunk=5)
        )
    finally:
        await pool.close()
    assert len(whole["points"]) == 12 * DAYS and len(whole["states"]) == 12
    assert len(whole["anomalies"]) >= 2 and n_whole >= 2  # the spikes were found
    assert chunked == whole
    assert n_chunked == n_whole


async def test_prefetch_reads_only_the_evaluated_window(database_url):
    """With max_days, prefetch returns the days the evaluation reads (from max_days before the
    last complete day) and the whole series' first day and watermark."""
    from services.anomaly.domain import SeriesKey, complete_through

    await migrate_url(database_url, "anomaly", Path(anomaly_pkg.__file__).parent / "migrations")
    pool = await create_pool(database_url)
    clock = lambda: datetime(2025, 4, 15, tzinfo=UTC)  # noqa: E731
    lateness = timedelta(hours=30)
    try:
        await run(pool, Evaluator(lambda: MONITORS, clock=clock))
        keys = [SeriesKey("services", ("AWS", f"a{s % 4}", f"svc{s}"), "USD") for s in range(12)]
        async with AnomalyStore(_Runtime(pool)).transaction() as tx:
            whole = await tx.prefetch(MONITORS[0], keys, 30)
            window = await tx.prefetch(MONITORS[0], keys, 30, max_days=10, lateness=lateness)
    finally:
        await pool.close()
    for key in keys:
        w, a = window[key], whole[key]
        assert len(a.points) == DAYS
        assert (w.first, w.high) == (a.first, a.high) == (DAY0, a.high)
        through = complete_through(a.high, lateness)
        assert through is not None
        cutoff = through - timedelta(days=10)
        assert w.points == {d: c for d, c in a.points.items() if d >= cutoff}
        assert 10 < len(w.points) < DAYS  # the window dropped the older days, kept the rest
