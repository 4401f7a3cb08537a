"""The embedded broker's memory before and after a rotation of its log, and what the rotation
costs (finfocus/embedded/rotation.py).

    .venv/bin/python bench/broker_rotation.py [--records 200000] [--size 1000] [--unconsumed 0.1]

Starts a Tansu broker, publishes N records of SIZE bytes onto a 4-partition topic, lets one
consumer group commit all but the last UNCONSUMED fraction, then drains the log to a file,
replaces the broker and refills it; prints the broker's RSS at each step and the seconds of
the drain and the refill (the services' pause is those plus their stop and start).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finfocus.embedded.kafka import start_kafka  # noqa: E402
from finfocus.embedded.rotation import drain, refill  # noqa: E402

TOPIC = "bench-rotation"


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def publish(bootstrap: str, records: int, size: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, 4, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    payload = b"x" * size
    try:
        pending = []
        for i in range(records):
            pending.append(await producer.send(TOPIC, payload, partition=i % 4))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def commit_all_but(bootstrap: str, records: int, unconsumed: float) -> None:
    per_partition = records // 4
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id="bench", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(4)]
        consumer.assign(tps)
        await consumer.commit({tp: int(per_partition * (1 - unconsumed)) for tp in tps})
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--unconsumed", type=float, default=0.1)
    args = parser.parse_args()
    broker = start_kafka()
    print(f"broker idle: {rss_mb(broker.process.pid):.0f} MB")
    started = time.perf_counter()
    await publish(broker.bootstrap, args.records, args.size)
    print(
        f"published {args.records:,} records of {args.size} B in "
        f"{time.perf_counter() - started:.1f} s: broker {rss_mb(broker.process.pid):.0f} MB"
    )
    await commit_all_but(broker.bootstrap, args.records, args.unconsumed)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.bin"
        started = time.perf_counter()
        drained = await drain(broker.bootstrap, copy)
        drain_s = time.perf_counter() - started
        port = broker.port
        broker.stop()
        started = time.perf_counter()
        broker = start_kafka(port=port)
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        await refill(broker.bootstrap, drained)
        refill_s = time.perf_counter() - started
        print(
            f"rotation: kept {drained.kept_records:,}, dropped {drained.dropped:,}; "
            f"copy {copy.stat().st_size / 2**20:.0f} MB on disk; drain {drain_s:.1f} s, "
            f"new broker {start_s:.1f} s, refill {refill_s:.1f} s"
        )
        print(f"broker after the rotation: {rss_mb(broker.process.pid):.0f} MB")
    broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
