"""pricing.job_progress on the real database: what `finfocus ingest --wait` follows instead of
adding up a job's lines every half second. It must count each stored row of a job once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from finfocus.db import create_pool, migrate_url, reader
from services.pricing.store import PricingStore

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "pricing" / "migrations"


class _Runtime:
    def __init__(self, pool) -> None:
        self.pool = pool


def rows(job: str, version: int, ids: range) -> list[tuple[str, str]]:
    return [
        (
            f"r{i}",
            orjson.dumps(
                {
                    "ProviderName": "AWS",
                    "BillingAccountId": "999",
                    "BillingCurrency": "USD",
                    "ServiceName": "AmazonEC2",
                    "ChargeCategory": "Usage",
                    "ChargePeriodStart": "2025-03-01T00:00:00Z",
                    "ChargePeriodEnd": "2025-03-02T00:00:00Z",
                    "BilledCost": f"{i}.25",
                    "x_PriceSource": "billed",
                    "x_RecordId": f"r{i}",
                    "x_BillingScope": "AWS:999:2025-03",
                    "x_BillingScopeVersion": version,
                    "x_ImportJobId": job,
                }
            ).decode(),
        )
        for i in ids
    ]


async def progress(url: str) -> dict[str, int]:
    async with reader(url) as conn:
        return dict(await conn.fetch("SELECT import_job_id, rows FROM pricing.v_job_progress"))


async def test_job_progress_counts_each_stored_row_once(database_url):
    await migrate_url(database_url, "pricing", MIGRATIONS)
    pool = await create_pool(database_url)
    store = PricingStore(_Runtime(pool))
    scope = ["AWS:999:2025-03"]
    try:
        await store.store_batch(rows("job-1", 1, range(0, 60)), [], scope)
        await store.store_batch(rows("job-1", 1, range(40, 100)), [], scope)  # 20 redelivered
        await store.store_batch(rows("job-1", 1, range(0, 10)) * 2, [], scope)  # twice in a batch
        assert await progress(database_url) == {"job-1": 100}
        # a restated month: the same rows again under a new job and version count for it
        await store.store_batch(rows("job-2", 2, range(0, 70)), [], scope)
        assert await progress(database_url) == {"job-1": 100, "job-2": 70}
    finally:
        await pool.close()
