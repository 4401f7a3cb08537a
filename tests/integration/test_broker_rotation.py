"""A rotation of the embedded broker's log on real Tansu processes: what every group consumed
is dropped, what any group has not read is published again in order, every group resumes at
the same record, and a topic nobody reads (a dead-letter topic) is kept whole."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from finfocus.embedded.kafka import start_kafka
from finfocus.embedded.rotation import drain, refill

pytestmark = pytest.mark.integration


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def _read_all(bootstrap: str, tp: TopicPartition) -> list:
    """Every record of `tp`, read to the fetches' high watermark (Tansu's `end_offsets`
    counts a batch of several records as one)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        out: list = []
        for _ in range(40):
            out.extend((await consumer.getmany(tp, timeout_ms=200)).get(tp, []))
            high = consumer.highwater(tp)
            if high is not None and await consumer.position(tp) >= high:
                return out
        raise AssertionError(f"{tp} could not be read to its end")
    finally:
        await consumer.stop()


async def _resume(bootstrap: str, group: str, topic: str) -> dict[int, list[bytes]]:
    """What `group` reads next on `topic` (subscribed, as a service reads)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: dict[int, list[bytes]] = {}
        quiet = 0
        for _ in range(30):  # until two empty polls after the first records
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                got.setdefault(tp.partition, []).extend(m.value for m in messages)
            quiet = quiet + 1 if got and not batch else 0
            if quiet >= 2:
                break
        return got
    finally:
        await consumer.stop()


async def test_a_rotation_drops_only_what_every_group_consumed(tmp_path):
    old = start_kafka()
    bootstrap, port = old.bootstrap, old.port
    bulk0, bulk1, dlq = (
        TopicPartition("bulk", 0),
        TopicPartition("bulk", 1),
        TopicPartition("bulk.dlq", 0),
    )
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("bulk", 2, 1), NewTopic("bulk.dlq", 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        for i in range(100):
            await producer.send_and_wait(
                "bulk",
                f"v{i}".encode(),
                key=f"k{i}".encode(),
                partition=i % 2,
                headers=[("n", str(i).encode())],
            )
        # one batch of ten: the copy must not stop at Tansu's short end offset (1 here)
        sent = [
            await producer.send("bulk.dlq", f"dead{i}".encode(), partition=0) for i in range(10)
        ]
        for each in sent:
            await each
        await producer.stop()
        before = {tp: await _read_all(bootstrap, tp) for tp in (bulk0, bulk1, dlq)}
        assert [len(before[tp]) for tp in (bulk0, bulk1, dlq)] == [50, 50, 10]
        await _commit(bootstrap, "g1", {bulk0: 50, bulk1: 20})
        await _commit(bootstrap, "g2", {bulk0: 30, bulk1: 50})

        drained = await drain(bootstrap, tmp_path / "copy.bin")
    finally:
        old.stop()
    assert drained.dropped == 30 + 20
    assert drained.kept_records == 20 + 30 + 10

    new = start_kafka(port=port)
    try:
        await refill(bootstrap, drained)
        after = {tp: await _read_all(bootstrap, tp) for tp in (bulk0, bulk1, dlq)}
        for tp, first in ((bulk0, 30), (bulk1, 20), (dlq, 0)):
            assert [(m.key, m.value, list(m.headers), m.timestamp) for m in after[tp]] == [
                (m.key, m.value, list(m.headers), m.timestamp) for m in before[tp][first:]
            ], tp
        # each group resumes at the record it would have read next
        assert await _resume(bootstrap, "g1", "bulk") == {
            1: [f"v{i}".encode() for i in range(41, 100, 2)]  # old offsets 20..49 of bulk[1]
        }
        g2 = await _resume(bootstrap, "g2", "bulk")
        assert g2 == {0: [f"v{i}".encode() for i in range(60, 100, 2)]}  # old 30..49 of bulk[0]
    finally:
        new.stop()
