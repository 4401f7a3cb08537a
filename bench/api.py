"""Latency of the api's main endpoints over many stored cost lines (target: insights/summary
p95 < 200 ms at 5 million lines).

    .venv/bin/python bench/api.py [--lines 5000000] [--days 90] [--requests 40] [--keep]
    .venv/bin/python bench/api.py --reuse ff_bench_api_XXXXXXXX [--keep]   # measure again

Creates a scratch database on FINFOCUS_TEST_PG_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/test; dropped at the end unless --keep), migrates every
service's schema, COPYs `--lines` priced cost lines into pricing.cost_lines (spread over the
last `--days` days: 20 accounts on 3 providers, 2 regions each, 30 services, 5,000
resources), lets pricing's daily aggregate catch up (the refresh pricing runs in the
background), then serves the api under uvicorn and prints p50/p95 of each endpoint over real
HTTP with a viewer token, one request at a time after a warm-up. `--keep` keeps the seeded
database; `--reuse NAME` measures a kept one again without seeding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finfocus.db import connect, migrate_url  # noqa: E402
from finfocus.settings import FinFocusSettings  # noqa: E402
from services.api import store as api_store  # noqa: E402
from services.api.app import build_app  # noqa: E402
from services.api.config import ApiSettings  # noqa: E402
from services.api.security import new_token, token_hash  # noqa: E402
from services.pricing.aggregate import refresh  # noqa: E402

ADMIN_URL = os.environ.get(
    "FINFOCUS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PROVIDERS = ("AWS", "Azure", "Google Cloud")
SERVICES = tuple(f"Service{i:02d}" for i in range(30))
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1")
COLUMNS = [
    "record_id",
    "provider",
    "billing_account_id",
    "sub_account_id",
    "service_name",
    "region_id",
    "resource_id",
    "resource_type",
    "charge_category",
    "charge_period_start",
    "charge_period_end",
    "billing_currency",
    "billed_cost",
    "effective_cost",
    "tags",
    "price_source",
    "priced_at",
    "record",
]


def chunk(start: int, n: int, days: int, today: datetime, rng: random.Random) -> list[tuple]:
    rows = []
    now = datetime.now(UTC)
    for i in range(start, start + n):
        account = rng.randrange(20)
        provider = PROVIDERS[account % 3]
        day = today - timedelta(days=i % days)
        hour = timedelta(hours=rng.randrange(24))
        cost = Decimal(rng.randrange(1, 500_000)) / 10_000
        rows.append(
            (
                f"bench-{i}",
                provider,
                f"billing-{account % 3}",
                f"acct-{account:02d}",
                SERVICES[rng.randrange(30)],
                REGIONS[(account + rng.randrange(2)) % len(REGIONS)],
                f"res-{rng.randrange(5000)}",
                "m5.large",
                "Usage",
                day + hour,
                day + hour + timedelta(hours=1),
                "USD",
                cost,
                cost,
                "{}",
                "billed",
                now,
                "{}",
            )
        )
    return rows


async def seed(url: str, lines: int, days: int) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(14)
    conn = await asyncpg.connect(url)  # asyncpg's own jsonb codec: binary COPY
    try:
        # the bulk load of a benchmark: the day marks are made once at the end instead
        await conn.execute("ALTER TABLE pricing.cost_lines DISABLE TRIGGER USER")
        t0, size = time.perf_counter(), 250_000
        for start in range(0, lines, size):
            rows = chunk(start, min(size, lines - start), days, today, rng)
            await conn.copy_records_to_table(
                "cost_lines", schema_name="pricing", records=rows, columns=COLUMNS
            )
            print(
                f"\r  copied {start + len(rows):,} lines ({time.perf_counter() - t0:.0f} s)",
                end="",
                flush=True,
            )
        print()
        await conn.execute("ALTER TABLE pricing.cost_lines ENABLE TRIGGER USER")
        await conn.execute(
            "INSERT INTO pricing.dirty_days (day) SELECT DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date "
            "FROM pricing.cost_lines ON CONFLICT DO NOTHING"
        )
        t1 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE pricing.cost_lines")
        print(f"  vacuum analyze: {time.perf_counter() - t1:.1f} s")
        t2 = time.perf_counter()
        rebuilt = await refresh(conn)
        await conn.execute("ANALYZE pricing.daily_costs")
        print(
            f"  daily aggregate: {rebuilt} days rebuilt in {time.perf_counter() - t2:.1f} s "
            f"({await conn.fetchval('SELECT count(*) FROM pricing.daily_costs'):,} rows)"
        )
    finally:
        await conn.close()


class Server(threading.Thread):
    def __init__(self, app) -> None:
        super().__init__(daemon=True)
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
            )
        )

    def run(self) -> None:
        self.server.run()


def endpoints(today: datetime) -> list[tuple[str, str, dict]]:
    month = today.replace(day=1).date().isoformat()
    last30 = (today - timedelta(days=30)).date().isoformat()
    tomorrow = (today + timedelta(days=1)).date().isoformat()
    return [
        ("insights/summary (month to date)", "/api/v1/insights/summary", {}),
        (
            "insights/summary (last 30 days)",
            "/api/v1/insights/summary",
            {"from": last30, "to": tomorrow},
        ),
        ("costs (month, total)", "/api/v1/costs", {"from": month, "to": tomorrow}),
        (
            "costs (30 days by service,account)",
            "/api/v1/costs",
            {"from": last30, "to": tomorrow, "group_by": "service,account"},
        ),
        (
            "costs (30 days daily, AWS)",
            "/api/v1/costs",
            {"from": last30, "to": tomorrow, "group_by": "daily", "filter": "provider=AWS"},
        ),
        (
            "costs (month by resource: lines)",
            "/api/v1/costs",
            {"from": month, "to": tomorrow, "group_by": "resource"},
        ),
        ("anomalies", "/api/v1/anomalies", {}),
        ("forecasts", "/api/v1/forecasts", {}),
        ("budgets", "/api/v1/budgets", {}),
        ("remediation/commands", "/api/v1/remediation/commands", {}),
        ("recommendations", "/api/v1/recommendations", {}),
    ]


async def measure(url: str, requests: int, home: Path) -> None:
    settings = ApiSettings(
        **FinFocusSettings(home=home, database_url=url, kafka_bootstrap="127.0.0.1:1").model_dump()
    )
    app = build_app(settings)
    token_id, token = new_token()
    conn = await connect(url)
    try:
        await migrate_url(url, "api", api_store.MIGRATIONS_DIR)
        await api_store.create_token(conn, token_id, token_hash(token), "viewer", "bench")
    finally:
        await conn.close()
    server = Server(app)
    server.start()
    while not server.server.started:  # noqa: ASYNC110 - uvicorn's flag, no event to await
        await asyncio.sleep(0.05)
    port = server.server.servers[0].sockets[0].getsockname()[1]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    print(f"\n{'endpoint':40} {'p50 ms':>8} {'p95 ms':>8} {'n':>4}")
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            for label, path, params in endpoints(today):
                n = max(5, requests // 4) if "lines" in label else requests
                for _ in range(3):
                    (await client.get(path, params=params)).raise_for_status()
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    response = await client.get(path, params=params)
                    times.append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
                times.sort()
                p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
                print(f"{label:40} {statistics.median(times):8.1f} {p95:8.1f} {n:4}")
    finally:
        server.server.should_exit = True
        server.join(10)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse", metavar="NAME", help="measure a database kept by --keep (no seeding)"
    )
    args = parser.parse_args()
    name = args.reuse or f"ff_bench_api_{uuid.uuid4().hex[:8]}"
    if not args.reuse:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    home = Path(f"/tmp/{name}")
    try:
        if args.reuse:
            conn = await asyncpg.connect(url)
            lines = await conn.fetchval("SELECT count(*) FROM pricing.cost_lines")
            await conn.close()
            print(f"measuring {name}: {lines:,} cost lines")
        else:
            for service in ("ingest", "pricing", "anomaly", "forecast", "remediation"):
                await migrate_url(url, service, ROOT / "services" / service / "migrations")
            print(f"seeding {args.lines:,} cost lines over {args.days} days into {name}")
            await seed(url, args.lines, args.days)
        await measure(url, args.requests, home)
    finally:
        if args.keep:
            print(f"kept database {name} (measure again: --reuse {name})")
        else:
            admin = await asyncpg.connect(ADMIN_URL)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
