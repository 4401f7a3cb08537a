"""The daily points the anomaly service keeps per series (series_points, updated by deltas)
must always equal what adding up the live lines from scratch gives: after redeliveries,
repriced records, duplicates inside a batch, restated billing scopes and late old versions."""

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
from services.anomaly.store import AnomalyStore, monitor_ref, series_key_text

pytestmark = pytest.mark.integration

MONITORS = [
    Monitor("services", ("ProviderName", "SubAccountId", "ServiceName")),
    Monitor("regions", ("RegionId",), top=2),
    Monitor("team-tag", ("tag:team",)),
    Monitor("ec2-only", (), (("ServiceName", "ec2"),)),
]
DAY0 = date(2025, 3, 1)


class _Runtime:
    def __init__(self, pool) -> None:
        self.pool = pool


def line(
    rid: str, rng: random.Random, *, version: int | None = None, cost: str | None = None
) -> CostLine:
    day = DAY0 + timedelta(days=rng.randrange(20))
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return CostLine(
        record_id=rid,
        provider="AWS",
        billing_account_id="999",
        account=rng.choice(["a1", "a2"]),
        service_name=rng.choice(["ec2", "s3", "rds"]),
        currency="USD",
        day=day,
        period_end=start + timedelta(hours=rng.choice([1, 12, 24])),
        cost=Decimal(cost or f"{rng.randrange(1, 50000)}.{rng.randrange(100):02d}"),
        priced=rng.random() > 0.1,
        region_id=rng.choice(["us-east-1", "eu-west-1", None]),
        charge_frequency=rng.choice(["Usage-Based"] * 5 + ["Recurring"]),
        billing_scope="AWS:999:2025-03" if version is not None else None,
        billing_scope_version=version,
        tags={"team": rng.choice(["data", "web"])} if rng.random() > 0.3 else {},
    )


async def stored_vs_recomputed(conn) -> tuple[dict, dict]:
    stored, fresh = {}, {}
    for m in MONITORS:
        ref = monitor_ref(m)
        for r in await conn.fetch(
            "SELECT series_key, day, cost FROM anomaly.series_points WHERE monitor_ref = $1", ref
        ):
            stored[(m.name, r["series_key"], r["day"])] = r["cost"]
        lines = [dict(r) for r in await conn.fetch("SELECT * FROM anomaly.live_lines")]
        for ln in lines:
            values = {
                "ProviderName": ln["provider"],
                "SubAccountId": ln["account"],
                "ServiceName": ln["service_name"],
                "RegionId": ln["region_id"] or "",
                "tag:team": (ln["tags"] or {}).get("team", ""),
            }
            if any(values[k] != v for k, v in m.filters):
                continue
            key = series_key_text(
                type(
                    "K",
                    (),
                    {"values": tuple(values[d] for d in m.dimensions), "currency": ln["currency"]},
                )()
            )
            cost = ln["cost"] if ln["priced"] and not ln["recurring"] else Decimal(0)
            fresh[(m.name, key, ln["day"])] = fresh.get((m.name, key, ln["day"]), Decimal(0)) + cost
    return stored, fresh


async def test_points_stay_equal_to_a_full_recount(database_url):
    directory = Path(anomaly_pkg.__file__).parent / "migrations"
    await migrate_url(database_url, "anomaly", directory)
    pool = await create_pool(database_url)
    store = AnomalyStore(_Runtime(pool))
    evaluator = Evaluator(lambda: MONITORS, clock=lambda: datetime(2025, 4, 1, tzinfo=UTC))
    rng = random.Random(5)
    sent: dict[str, CostLine] = {}
    try:
        for step in range(14):
            batch = [line(f"r{step}-{i}", rng) for i in range(40)]
            if sent:  # redeliveries, some of them repriced
                again = rng.sample(sorted(sent), min(15, len(sent)))
                batch += [sent[r] for r in again[:10]]
                batch += [
                    CostLine(**{**sent[r].__dict__, "cost": sent[r].cost + Decimal("1.25")})
                    for r in again[10:]
                ]
            batch += batch[:3]  # the same record twice in one batch
            if step in (6, 11):  # a restated month: version 2, then 3
                batch += [line(f"v{step}-{i}", rng, version=1 + step // 5) for i in range(30)]
            if step == 8:  # a late line of the superseded version 1
                batch.append(line("late-v1", rng, version=1))
            if step == 2:
                batch += [line(f"v1-{i}", rng, version=1) for i in range(30)]
            async with store.transaction() as tx:
                await evaluator.process(tx, batch)
            for ln in batch:
                sent[ln.record_id] = ln
            async with pool.acquire() as conn:
                stored, fresh = await stored_vs_recomputed(conn)
            assert stored == fresh, f"points drifted at step {step}"
        assert len(stored) > 100  # the check covered many series-days
        assert any(v == 0 for v in stored.values()) and sum(stored.values()) > 0
    finally:
        await pool.close()
