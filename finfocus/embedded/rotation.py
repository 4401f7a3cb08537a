"""Bounded memory for the embedded broker: a planned rotation of its log.

Tansu's memory storage deletes nothing (it stores `retention.ms`/`retention.bytes` and does
not apply them: docs/operations.md, "Broker retention"), so its RSS grows with everything
ever published until the process goes. When it passes FINFOCUS_BROKER_ROTATE_MB the stack
stops the services and rotates the log:

1. `drain`: every consumer group's committed offsets, and a copy (to a private file, not to
   memory) of what some group has not consumed yet: each partition from the lowest offset
   committed on it by the groups that read its topic; a partition of a topic no group reads
   (the dead-letter topics), or one a reading group never committed on, whole;
2. a fresh broker on the same port;
3. `refill`: the copy published back into the same partitions in the same order, then each
   group's offsets committed at the same records in the new numbering (`moved`).

What every group had consumed is dropped, as Kafka's retention would drop it; nothing a group
has not read is lost, and no group reads a record twice. A record published by a client
outside the stack between the drain and the broker's stop (milliseconds, with every service
stopped) is the one thing a rotation can lose; imports and the HTTP intake are not exposed
(ingest is stopped, and `finfocus ingest` jobs are re-published when unconfirmed).
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

#: per record: partition, timestamp (ms), key length, value length, header count; -1 = None
_HEAD = struct.Struct(">iqiii")
_LEN = struct.Struct(">i")

TopicPartition = tuple[str, int]


@dataclass
class Drained:
    """What `drain` took from the old log: enough for `refill` to rebuild it."""

    path: Path
    partitions: dict[str, int]  # topic -> partition count
    committed: dict[str, dict[TopicPartition, int]]  # group -> (topic, partition) -> offset
    #: per partition, the old offsets of the records kept, in order (where commits move)
    kept: dict[TopicPartition, array] = field(default_factory=dict)
    dropped: int = 0

    @property
    def kept_records(self) -> int:
        return sum(len(offsets) for offsets in self.kept.values())


def keep_from(begin: int, committed: Sequence[int | None]) -> int:
    """The first offset of a partition to keep: the lowest committed by the groups that read
    its topic; its beginning when no group reads it or one of them never committed on it."""
    if not committed or any(c is None for c in committed):
        return begin
    return max(begin, min(c for c in committed if c is not None))


def moved(offset: int, kept: Sequence[int]) -> int:
    """Where a group's committed `offset` lands in the new log: the number of kept records
    before it (a committed offset names the next record to read)."""
    return bisect_left(kept, offset)


def readers(committed: dict[str, dict[TopicPartition, int]], topic: str) -> list[str]:
    """The groups that read `topic`: those with a committed offset on any of its partitions."""
    return sorted(g for g, offsets in committed.items() if any(t == topic for t, _ in offsets))


# -- the copy on disk -----------------------------------------------------------------------


def write_record(
    out: BinaryIO,
    partition: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> None:
    out.write(
        _HEAD.pack(
            partition,
            timestamp,
            -1 if key is None else len(key),
            -1 if value is None else len(value),
            len(headers),
        )
    )
    if key is not None:
        out.write(key)
    if value is not None:
        out.write(value)
    for name, data in headers:
        encoded = name.encode()
        out.write(_LEN.pack(len(encoded)) + encoded + _LEN.pack(len(data or b"")) + (data or b""))


def read_records(
    source: BinaryIO,
) -> Iterator[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    def exact(n: int) -> bytes:
        data = source.read(n)
        if len(data) != n:
            raise ValueError("the broker rotation's copy is truncated")
        return data

    while head := source.read(_HEAD.size):
        if len(head) != _HEAD.size:
            raise ValueError("the broker rotation's copy is truncated")
        partition, timestamp, key_len, value_len, count = _HEAD.unpack(head)
        key = None if key_len < 0 else exact(key_len)
        value = None if value_len < 0 else exact(value_len)
        headers = []
        for _ in range(count):
            name = exact(_LEN.unpack(exact(4))[0]).decode()
            headers.append((name, exact(_LEN.unpack(exact(4))[0])))
        yield partition, timestamp, key, value, headers


# -- against the brokers ----------------------------------------------------------------------


@dataclass
class Survey:
    """The log as offsets only: its topics, every group's commits, each partition's bounds."""

    partitions: dict[str, int]  # topic -> partition count
    committed: dict[str, dict[TopicPartition, int]]
    begins: dict[TopicPartition, int]
    #: Tansu's end offsets: short of the records of the last batch only (see `_copy`)
    ends: dict[TopicPartition, int]

    def first_kept(self, tp: TopicPartition) -> int:
        groups = readers(self.committed, tp[0])
        return keep_from(self.begins[tp], [self.committed[g].get(tp) for g in groups])

    def consumed_share(self) -> float:
        """The part of the log a rotation would drop (0 to 1): what every reader consumed.
        A log that is mostly unconsumed (a burst the consumers are still working through)
        is not worth rotating: it would be copied back whole with the services stopped."""
        dropped = kept = 0
        for tp, begin in self.begins.items():
            first = self.first_kept(tp)
            dropped += first - begin
            kept += max(self.ends[tp] - first, 0)
        return dropped / (dropped + kept) if dropped + kept else 0.0


async def survey(bootstrap: str) -> Survey:
    """Read the log's groups and offsets, changing nothing (no records are fetched)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as TP
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = [g for g, _ in await admin.list_consumer_groups()]
    finally:
        await admin.close()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        topics = sorted(await reader.topics())
        partitions = {t: len(reader.partitions_for_topic(t) or ()) for t in topics}
        tps = [TP(t, p) for t in topics for p in range(partitions[t])]
        committed = await _committed(bootstrap, groups, tps)
        begins = await reader.beginning_offsets(tps) if tps else {}
        ends = await reader.end_offsets(tps) if tps else {}
    finally:
        await reader.stop()
    return Survey(
        partitions,
        committed,
        {(tp.topic, tp.partition): at for tp, at in begins.items()},
        {(tp.topic, tp.partition): at for tp, at in ends.items()},
    )


async def drain(bootstrap: str, path: Path) -> Drained:
    """Survey the old log and copy what some group has not consumed into `path` (one file,
    topic sections in order), without changing anything on the broker."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as TP

    log = await survey(bootstrap)
    drained = Drained(path, log.partitions, log.committed)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        with path.open("wb") as out:
            for topic, count in log.partitions.items():
                _write_topic_header(out, topic)
                for p in range(count):
                    first = log.first_kept((topic, p))
                    drained.dropped += first - log.begins[(topic, p)]
                    offsets = drained.kept[(topic, p)] = array("q")
                    # a partition whose end is its beginning is empty (Tansu's short end
                    # offsets are never that for a partition that holds a record)
                    if log.ends[(topic, p)] > log.begins[(topic, p)]:
                        await _copy(reader, TP(topic, p), first, out, offsets)
                _write_topic_end(out)
        return drained
    finally:
        await reader.stop()


async def _committed(
    bootstrap: str, groups: list[str], tps: list[Any]
) -> dict[str, dict[TopicPartition, int]]:
    from aiokafka import AIOKafkaConsumer

    committed: dict[str, dict[TopicPartition, int]] = {}
    for group in groups:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            offsets = committed[group] = {}
            for tp in tps:
                at = await consumer.committed(tp)
                if at is not None:
                    offsets[(tp.topic, tp.partition)] = at
        finally:
            await consumer.stop()
    return committed


async def _copy(reader: Any, tp: Any, first: int, out: BinaryIO, offsets: array) -> None:
    """Copy one partition from `first` to its end. The end is the high watermark of the
    fetches, not `end_offsets`: Tansu answers ListOffsets with the last batch's base offset
    plus one, short of the records of a batch that holds more than one (measured)."""
    reader.assign([tp])
    reader.seek(tp, first)
    idle = 0
    while True:
        batch = await reader.getmany(tp, timeout_ms=200, max_records=5000)
        messages = batch.get(tp, [])
        for m in messages:
            write_record(out, tp.partition, m.timestamp, m.key, m.value, list(m.headers or ()))
            offsets.append(m.offset)
        high = reader.highwater(tp)
        if high is not None and await reader.position(tp) >= high:
            return
        idle = 0 if messages else idle + 1
        if idle >= 50:
            raise RuntimeError(f"{tp.topic}[{tp.partition}] could not be read to its end")


# topic sections: a record with partition -2 carries the topic's name in its key, -3 ends it
def _write_topic_header(out: BinaryIO, topic: str) -> None:
    write_record(out, -2, 0, topic.encode(), None, ())


def _write_topic_end(out: BinaryIO) -> None:
    write_record(out, -3, 0, None, None, ())


async def refill(bootstrap: str, drained: Drained) -> None:
    """Publish the copy into the fresh log (same topics, partitions and order) and commit
    every group's offsets at the same records."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as TP
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        have = set(await admin.list_topics())
        missing = [t for t in drained.partitions if t not in have]
        if missing:
            await admin.create_topics([NewTopic(t, drained.partitions[t], 1) for t in missing])
    finally:
        await admin.close()
    # the services' batch size: 16 KB batches (the default) refill at a third of the speed
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        with drained.path.open("rb") as source:
            topic = ""
            pending = []
            for partition, timestamp, key, value, headers in read_records(source):
                if partition == -2:
                    topic = (key or b"").decode()
                    continue
                if partition == -3:
                    continue
                pending.append(
                    await producer.send(
                        topic,
                        value,
                        key=key,
                        partition=partition,
                        timestamp_ms=timestamp if timestamp >= 0 else None,
                        headers=headers,
                    )
                )
                if len(pending) >= 5000:
                    for sent in pending:
                        await sent
                    pending.clear()
            for sent in pending:
                await sent
    finally:
        await producer.stop()
    for group, offsets in drained.committed.items():
        if not offsets:
            continue
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            positions = {
                TP(t, p): moved(at, drained.kept.get((t, p), array("q")))
                for (t, p), at in offsets.items()
            }
            consumer.assign(list(positions))
            await consumer.commit(positions)
        finally:
            await consumer.stop()
