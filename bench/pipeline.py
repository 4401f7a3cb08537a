"""End-to-end throughput of billed records (publish on raw-billing -> stored in `pricing`)
beside the raw broker's produce+consume rate for the same payloads, in the same run.

    .venv/bin/python bench/pipeline.py [--records 50000] [--runs 5]

Each run starts its own embedded broker and uses FINFOCUS_DATABASE_URL or a fresh database
on 127.0.0.1:5432 (dropped afterwards); runs alternate which measure goes first, and the bench
prints each run and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finfocus.embedded.kafka import start_kafka  # noqa: E402
from schemas.topics import Topics  # noqa: E402

ADMIN_URL = os.environ.get(
    "FINFOCUS_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def payloads(n: int) -> list[bytes]:
    """~450-byte FOCUS billing records with distinct ids."""
    out = []
    for i in range(n):
        day = 1 + i % 28
        out.append(
            orjson.dumps(
                {
                    "ProviderName": "AWS",
                    "BillingAccountId": "123456789012",
                    "SubAccountId": f"2100000000{i % 10:02d}",
                    "ChargePeriodStart": f"2024-09-{day:02d}T00:00:00Z",
                    "ChargePeriodEnd": f"2024-09-{day:02d}T01:00:00Z",
                    "BillingCurrency": "USD",
                    "ServiceName": "Amazon Elastic Compute Cloud",
                    "ServiceCategory": "Compute",
                    "ChargeCategory": "Usage",
                    "BilledCost": str(Decimal(i % 10_000) / 1000),
                    "ConsumedQuantity": "1",
                    "ConsumedUnit": "Hours",
                    "ResourceId": f"i-{i:017x}",
                    "ResourceType": "m5.large",
                    "RegionId": "us-east-1",
                    "SkuId": "JRTCKXETXF",
                    "Tags": {"team": "core"},
                    "x_RecordId": f"bench-{i}",
                }
            )
        )
    return out


async def send_all(bootstrap: str, topic: str, values: list[bytes]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        max_batch_size=256 * 1024,
        enable_idempotence=False,
        acks=1,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, v, key=b"AWS:bench") for v in values]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def raw_rate(bootstrap: str, values: list[bytes]) -> tuple[float, float, float]:
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    produce_s = await send_all(bootstrap, topic, values)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        got = 0
        started = time.perf_counter()
        while got < len(values):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            got += sum(len(r) for r in batch.values())
        consume_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    n = len(values)
    return n / produce_s, n / consume_s, n / (produce_s + consume_s)


STORED = "SELECT coalesce(sum(records), 0) FROM pricing.consumer_positions"


SERVICE = """
import asyncio, logging, os
logging.basicConfig(level=logging.WARNING)
from services.pricing.app import build_app
if os.environ.get("BENCH_PROFILE"):
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
asyncio.run(build_app().run())
if os.environ.get("BENCH_PROFILE"):
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE"])
"""


async def end_to_end(bootstrap: str, database_url: str, values: list[bytes], home: Path) -> float:
    """Rows/s from the first publish until every record is stored, with the pricing service
    in its own process as `finfocus serve pricing` runs it."""
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(home),
        "FINFOCUS_KAFKA_BOOTSTRAP": bootstrap,
        "FINFOCUS_DATABASE_URL": database_url,
        "FINFOCUS_KAFKA_SESSION_TIMEOUT_MS": "1500",
        "FINFOCUS_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),  # noqa: ASYNC240 - before the clock starts
    }
    service = subprocess.Popen([sys.executable, "-c", SERVICE], env=env)  # noqa: ASYNC220 - ditto, not awaited
    conn = None
    try:
        warmup = payloads(1)
        await send_all(bootstrap, Topics.RAW_BILLING, [warmup[0].replace(b"bench-0", b"warmup")])
        deadline = time.monotonic() + 60
        while conn is None or await conn.fetchval(STORED) < 1:
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError("the pricing service did not start")
            await asyncio.sleep(0.1)
            if conn is None:
                try:
                    conn = await asyncpg.connect(database_url)
                    await conn.fetchval(STORED)
                except (asyncpg.UndefinedTableError, OSError):
                    await conn.close() if conn else None
                    conn = None
        started = time.perf_counter()
        await send_all(bootstrap, Topics.RAW_BILLING, values)
        target = len(values) + 1
        while await conn.fetchval(STORED) < target:  # noqa: ASYNC110 - the count is in the database
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        lines = await conn.fetchval("SELECT count(*) FROM pricing.v_cost_lines")
        assert lines == target, f"{lines} lines stored, expected {target}"
        return len(values) / elapsed
    finally:
        if conn is not None:
            await conn.close()
        service.terminate()
        try:
            service.wait(15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


async def one_run(values: list[bytes], raw_first: bool) -> tuple[float, float, float, float]:
    """(produce, consume, raw produce+consume, end-to-end) rows/s on a fresh broker and a
    fresh database; `raw_first` alternates which of the two measures goes first."""
    url = os.environ.get("FINFOCUS_DATABASE_URL")
    created = None
    if not url:
        created = f"ff_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{created}"')
        await admin.close()
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{created}"
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_kafka(Path(tmp) / "tansu.log")
        try:
            if raw_first:
                produce, consume, raw = await raw_rate(broker.bootstrap, values)
                e2e = await end_to_end(broker.bootstrap, url, values, Path(tmp) / "home")
            else:
                e2e = await end_to_end(broker.bootstrap, url, values, Path(tmp) / "home")
                produce, consume, raw = await raw_rate(broker.bootstrap, values)
        finally:
            broker.stop()
            if created:
                admin = await asyncpg.connect(ADMIN_URL)
                await admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
                await admin.close()
    return produce, consume, raw, e2e


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument(
        "--runs", type=int, default=1, help="runs, alternating which measure goes first"
    )
    args = parser.parse_args()
    values = payloads(args.records)
    size = sum(len(v) for v in values) / len(values)
    results = []
    for run in range(args.runs):
        produce, consume, raw, e2e = await one_run(values, raw_first=run % 2 == 0)
        results.append((raw, e2e))
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"run {run + 1}: raw produce {produce:,.0f} msg/s, consume {consume:,.0f} msg/s, "
            f"produce+consume {raw:,.0f} rows/s; end-to-end {e2e:,.0f} rows/s; "
            f"ratio {e2e / raw:.2f} (load average {load})",
            flush=True,
        )
    raw = statistics.median(r for r, _ in results)
    e2e = statistics.median(e for _, e in results)
    ratio = statistics.median(e / r for r, e in results)
    print(f"records: {len(values)} of {size:.0f} bytes; {os.cpu_count()} CPUs; {args.runs} run(s)")
    print(f"raw broker produce+consume, median: {raw:,.0f} rows/s")
    print(f"end-to-end (publish -> stored in pricing), median: {e2e:,.0f} rows/s")
    print(
        f"ratio end-to-end / raw: {e2e / raw:.2f} of the medians, {ratio:.2f} median of the "
        "runs' ratios (target >= 0.6)"
    )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
