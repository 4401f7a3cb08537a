"""The anomaly service alone on a backlog: its RSS and CPU per row, without the rest of the stack.

    nice -n 10 .venv/bin/python bench/anomaly_backlog.py [--rows 200000] [--rate ROWS_S]
        [--cwd DIR] [--env NAME=VALUE ...]

Starts an embedded broker and a fresh database on 127.0.0.1:5432 (dropped afterwards), puts
`--rows` priced records on `priced-resources` (the rows of bench/memory.py: 500 resources over
60 days, 105 series of the default monitor), then runs `finfocus serve anomaly` and samples its
RSS until every line is stored. With `--rate`, the records are produced at that rate while the
service runs (a stream: small batches) instead of beforehand (a backlog: full batches).
`--cwd` runs the service from another checkout (e.g. a `git worktree` of an older commit, to
compare before and after on the same machine minutes apart); `--env` adds to its environment
(e.g. FINFOCUS_ANOMALY_BATCH_MAX_RECORDS=5000). Prints rows/s, the service's CPU ms per row,
its idle and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TRACEPARENT = b"00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"


def records(n: int, resources: int = 500, days: int = 60, seed: int = 19) -> Iterator[tuple]:
    """(key, value) of `n` PricedRecord v1, the rows bench/memory.py imports."""
    from schemas.pricing import PricedRecordV1

    rng = random.Random(seed)
    first = datetime.now(UTC).date() - timedelta(days=days)
    services = ["Compute", "Storage", "Database", "Network", "Functions"]
    level = [rng.lognormvariate(1.0, 1.0) for _ in range(resources)]
    for i in range(n):
        r = i % resources
        day = first + timedelta(days=(i // resources) % days)
        start = datetime(day.year, day.month, day.day, (i // (resources * days)) % 24, tzinfo=UTC)
        rec = PricedRecordV1(
            ProviderName=("AWS", "Microsoft", "Google Cloud")[r % 3],
            BillingAccountId="acct-mem",
            SubAccountId=f"sub-{r % 7}",
            ChargePeriodStart=start,
            ChargePeriodEnd=start + timedelta(seconds=3599),
            BillingCurrency="USD",
            ServiceName=services[r % len(services)],
            RegionId=f"region-{r % 4}",
            ResourceId=f"mem-{r:06d}",
            ResourceType=f"type-{r % 9}",
            ChargeCategory="Usage",
            BilledCost=Decimal(f"{max(level[r] * rng.uniform(0.7, 1.3), 0.0):.6f}"),
            x_RecordId=f"rec-{i}",
            x_PriceSource="billed",
        )
        yield f"{rec.ProviderName}:{rec.SubAccountId}".encode(), rec.model_dump_json().encode()


async def produce(producer, n: int, rate: float | None = None) -> None:
    started = time.monotonic()
    for sent, (key, value) in enumerate(records(n), start=1):
        await producer.send(
            "priced-resources", value, key=key, headers=[("traceparent", TRACEPARENT)]
        )
        if rate and sent % 500 == 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    await producer.flush()


async def wait_schema(url: str, service: asyncio.subprocess.Process) -> asyncpg.Connection:
    while service.returncode is None:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(url)
            if await conn.fetchval("SELECT to_regclass('anomaly.cost_lines') IS NOT NULL"):
                return conn
            await conn.close()
        await asyncio.sleep(0.5)
    raise SystemExit("the service exited before its schema was there")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rate", type=float, help="produce while the service runs, rows/s")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="checkout the service runs from")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service")
    args = parser.parse_args()

    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from finfocus.embedded.kafka import start_kafka

    home = Path(tempfile.mkdtemp(prefix="anomaly-backlog-"))
    broker = start_kafka(home / "tansu.log")
    name = f"ff_backlog_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    service = None
    try:
        topics = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await topics.start()
        await topics.create_topics([NewTopic("priced-resources", 4, 1)])
        await topics.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=20, max_batch_size=1 << 20
        )
        await producer.start()
        if not args.rate:
            await produce(producer, args.rows)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
        env |= {
            "FINFOCUS_HOME": str(home),
            "FINFOCUS_KAFKA_BOOTSTRAP": broker.bootstrap,
            "FINFOCUS_DATABASE_URL": url,
        }
        env |= dict(kv.split("=", 1) for kv in args.env)
        with (home / "service.log").open("w") as log:
            service = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "finfocus.cli",
                "serve",
                "anomaly",
                env=env,
                cwd=args.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = psutil.Process(service.pid)
        conn = await wait_schema(url, service)
        idle = proc.memory_info().rss >> 20
        cpu0, t0, peak, stored = sum(proc.cpu_times()[:2]), time.monotonic(), idle, 0
        streaming = (
            asyncio.create_task(produce(producer, args.rows, args.rate)) if args.rate else None
        )
        while stored < args.rows and service.returncode is None:
            await asyncio.sleep(0.5)
            peak = max(peak, proc.memory_info().rss >> 20)
            stored = await conn.fetchval("SELECT count(*) FROM anomaly.cost_lines")
        elapsed, cpu = time.monotonic() - t0, sum(proc.cpu_times()[:2]) - cpu0
        print(
            f"stored {stored} in {elapsed:.1f}s: {stored / elapsed:.0f} rows/s; service CPU "
            f"{cpu:.1f}s = {cpu / max(stored, 1) * 1e3:.3f} ms/row; RSS idle {idle} MB, "
            f"peak {peak} MB; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        if streaming is not None:
            await streaming
        await producer.stop()
        await conn.close()
    finally:
        if service is not None and service.returncode is None:
            service.terminate()
            await asyncio.wait_for(service.wait(), 30)
        broker.stop()
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
