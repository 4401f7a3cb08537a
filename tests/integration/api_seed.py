"""Seeding a small, known set of priced cost lines through pricing's own store, for the api
tests (the same path pricing's consumer takes to store what it priced)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import asyncpg

from finfocus.db import create_pool, migrate_url
from schemas.pricing import PricedRecordV1
from services.pricing.store import PricingStore

PRICING_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "pricing" / "migrations"
SERVICES = ("AmazonEC2", "AmazonS3", "AmazonRDS")
ACCOUNTS = ("111111111111", "222222222222")


def lines(start: datetime, days: int) -> list[PricedRecordV1]:
    """Per day, service and account a line with an uneven cost (cents that must add exactly),
    plus one EUR line a day so totals come per currency."""
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        for s, service in enumerate(SERVICES):
            for a, account in enumerate(ACCOUNTS):
                cost = (
                    Decimal("10.01") * (s + 1) + Decimal("0.333") * (a + 1) + Decimal(d) / 7
                ).quantize(Decimal("0.000001"))
                out.append(
                    PricedRecordV1(
                        ProviderName="AWS",
                        BillingAccountId="999999999999",
                        SubAccountId=account,
                        ChargePeriodStart=day,
                        ChargePeriodEnd=day + timedelta(days=1),
                        BillingCurrency="USD",
                        ServiceName=service,
                        ChargeCategory="Usage",
                        BilledCost=cost.quantize(Decimal("0.000001")),
                        EffectiveCost=cost,
                        RegionId="us-east-1",
                        ResourceId=f"i-{s}{a}",
                        x_RecordId=f"rec-{d}-{s}-{a}",
                        x_PriceSource="billed",
                    )
                )
        out.append(
            PricedRecordV1(
                ProviderName="Azure",
                BillingAccountId="sub-eu",
                ChargePeriodStart=day,
                ChargePeriodEnd=day + timedelta(days=1),
                BillingCurrency="EUR",
                ServiceName="Storage",
                ChargeCategory="Usage",
                BilledCost=Decimal("1.25"),
                x_RecordId=f"eur-{d}",
                x_PriceSource="billed",
            )
        )
    return out


async def seed_cost_lines(
    database_url: str, start: datetime | None = None, days: int = 40
) -> list[PricedRecordV1]:
    start = start or (
        datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=days - 2)
    )
    await migrate_url(database_url, "pricing", PRICING_MIGRATIONS)
    pool: asyncpg.Pool = await create_pool(database_url)
    try:
        records = lines(start, days)
        store = PricingStore(SimpleNamespace(pool=pool))
        refused = await store.store_batch(
            [(r.x_RecordId, r.model_dump_json()) for r in records], []
        )
        assert refused == {}
    finally:
        await pool.close()
    return records


async def refresh_daily_costs(database_url: str) -> int:
    """What pricing's background task does: rebuild the marked days of the daily aggregate."""
    from finfocus.db import connect
    from services.pricing.aggregate import refresh

    conn = await connect(database_url)
    try:
        return await refresh(conn)
    finally:
        await conn.close()
