"""Throughput of the anomaly service itself: priced records in, evaluated and stored, on the
embedded broker and a PostgreSQL at FINFOCUS_BENCH_PG (default the local one on 5432).

Phase 1 (backfill): `--series` series x `--days` days of daily records, published at once.
Phase 2 (steady state): one more day for every series (the stored walks resume).
Prints rows/s and series evaluations/s for both.

`--lines-per-day` splits each series-day into that many records (one per resource), as a
real bill does: the default 1 is the worst case for records/s, since every record then costs
a full series-day evaluation; a CUR has tens to hundreds of lines per account, service and day.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finfocus.embedded.kafka import start_kafka  # noqa: E402
from finfocus.settings import FinFocusSettings  # noqa: E402
from services.anomaly.app import build_app  # noqa: E402

ADMIN = os.environ.get("FINFOCUS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
START = date(2025, 6, 2)


def record(series: int, day: int, line: int = 0) -> bytes:
    d = START + timedelta(days=day)
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    cost = 100 + series + (day * 7919 + series * 104729 + line) % 13
    return orjson.dumps(
        {
            "ProviderName": "AWS",
            "BillingAccountId": "999",
            "SubAccountId": f"acct-{series % 10}",
            "ChargePeriodStart": start.isoformat(),
            "ChargePeriodEnd": (start + timedelta(days=1)).isoformat(),
            "BillingCurrency": "USD",
            "ServiceName": f"svc-{series}",
            "ChargeCategory": "Usage",
            "BilledCost": f"{cost}.00",
            "ResourceId": f"r-{series}-{line}",
            "x_RecordId": f"b-{series}-{day}-{line}",
            "x_PriceSource": "billed",
        }
    )


async def publish(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for i, v in enumerate(values):
            await producer.send("priced-resources", v, key=f"k{i % 64}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def wait_rows(url: str, want: int, timeout: float = 600) -> None:
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM anomaly.cost_lines") >= want:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("records not processed in time")
    finally:
        await conn.close()


async def main(series: int, days: int, lines: int) -> None:
    name = f"ff_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    home = Path(tempfile.mkdtemp())
    kafka = start_kafka(home / "tansu.log")
    try:
        settings = FinFocusSettings(
            home=home,
            kafka_bootstrap=kafka.bootstrap,
            database_url=url,
            kafka_session_timeout_ms=1500,
            kafka_heartbeat_interval_ms=500,
        )
        app = build_app(settings)
        await app.start()
        try:
            rows = [
                record(s, d, k) for d in range(days) for s in range(series) for k in range(lines)
            ]
            t0 = time.perf_counter()
            await publish(kafka.bootstrap, rows)
            await wait_rows(url, len(rows))
            backfill = time.perf_counter() - t0
            more = [record(s, days, k) for s in range(series) for k in range(lines)]
            t0 = time.perf_counter()
            await publish(kafka.bootstrap, more)
            await wait_rows(url, len(rows) + len(more))
            steady = time.perf_counter() - t0
        finally:
            await app.stop()
    finally:
        kafka.stop()
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"anomaly service, backfill: {len(rows)} records ({series} series x {days} days x {lines} lines) "
        f"in {backfill:.1f} s = {len(rows) / backfill:.0f} records/s, "
        f"{series * days / backfill:.0f} series-days/s (publish to evaluated and stored)"
    )
    print(
        f"anomaly service, one new day: {len(more)} records in {steady:.2f} s "
        f"= {series / steady:.0f} series evaluated/s (resumed walks)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument(
        "--lines-per-day", type=int, default=1, help="records per series and day (default 1)"
    )
    args = ap.parse_args()
    asyncio.run(main(args.series, args.days, args.lines_per_day))
