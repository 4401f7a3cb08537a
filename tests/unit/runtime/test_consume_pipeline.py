"""The consume pipeline with an in-memory unit of work and a recording consumer (no sockets)."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from finfocus import health
from finfocus.broker import Envelope
from finfocus.consume import (
    Done,
    InMemoryUnitOfWork,
    Pipeline,
    RetryPolicy,
    is_data_error,
    is_transient,
)


class RecordingConsumer:
    """Stands in for the aiokafka consumer: records commits, pauses, seeks; can fail."""

    def __init__(self, events: list) -> None:
        self.events = events
        self.paused: list = []
        self.seeks: list = []
        self.resumed: list = []

    async def commit(self, offsets) -> None:
        self.events.append(("commit", {(tp.topic, tp.partition): o for tp, o in offsets.items()}))

    def pause(self, *tps) -> None:
        self.paused.extend((tp.topic, tp.partition) for tp in tps)

    def seek(self, tp, offset) -> None:
        self.seeks.append(((tp.topic, tp.partition), offset))

    def resume(self, *tps) -> None:
        self.resumed.extend((tp.topic, tp.partition) for tp in tps)


class LoggingUoW(InMemoryUnitOfWork):
    def __init__(self, events: list) -> None:
        super().__init__()
        self.events = events

    def transaction(self):
        uow = self
        inner = super().transaction()

        class _Tx:
            async def __aenter__(self):
                return await inner.__aenter__()

            async def __aexit__(self, *exc):
                result = await inner.__aexit__(*exc)
                if exc[0] is None:
                    uow.events.append(("tx-commit",))
                return result

        return _Tx()


def records(*values: bytes, partition: int = 0, first: int = 0) -> list[Envelope]:
    return [
        Envelope(value=v, key=b"k", headers={}, topic="t", partition=partition, offset=first + i)
        for i, v in enumerate(values)
    ]


def make(work, events: list, **kwargs) -> tuple[Pipeline, LoggingUoW, list, list]:
    uow = LoggingUoW(events)
    published: list = []
    letters: list = []

    async def publish(topic, recs):
        events.append(("publish", topic, len(recs)))
        published.extend(recs)

    async def publish_letters(items):
        letters.extend(items)

    pipeline = Pipeline(
        service="svc",
        group="g",
        uow=uow,
        work=work,
        publish=publish,
        publish_letters=publish_letters,
        decode=lambda env: json.loads(env.value),
        label="thing",
        retry=RetryPolicy(base_s=0.001, cap_s=0.002, max_failures=2, stall_retry_s=60),
        **kwargs,
    )
    return pipeline, uow, published, letters


async def store_all(tx, items):
    tx.extend(items)
    return Done(outgoing=[("out", (None, json.dumps(i).encode(), [])) for i in items])


async def test_bad_record_is_one_dead_letter_and_the_rest_is_stored():
    events: list = []
    pipeline, uow, published, letters = make(store_all, events)
    await pipeline.handle(records(b"1", b"not json", b"3"), RecordingConsumer(events))
    assert uow.committed == [1, 3]
    assert [(d.source_offset, d.error.startswith("invalid thing:")) for d in letters] == [(1, True)]
    assert len(published) == 2


async def test_offsets_are_committed_only_after_the_transaction_and_the_publish():
    events: list = []
    pipeline, uow, _, _ = make(store_all, events)
    await pipeline.handle(records(b"1", b"2", first=40), RecordingConsumer(events))
    assert events == [("tx-commit",), ("publish", "out", 2), ("commit", {("t", 0): 42})]
    assert [(g, r.first, r.last, r.records) for g, r in uow.tracked] == [("g", 40, 41, 2)]
    assert pipeline.health[("t", 0)].committed == 42


async def test_transient_error_is_retried_not_dead_lettered_and_not_committed_meanwhile():
    events: list = []
    failures = [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        ConnectionRefusedError(111, "refused"),
        KafkaConnectionError("broker away"),
    ]

    async def flaky(tx, items):
        if failures:
            events.append(("attempt-failed",))
            raise failures.pop(0)
        return await store_all(tx, items)

    pipeline, uow, _, letters = make(flaky, events)
    await pipeline.handle(records(b"1", b"2"), RecordingConsumer(events))
    assert letters == []
    assert uow.committed == [1, 2]
    kinds = [e[0] for e in events]
    assert kinds == ["attempt-failed"] * 3 + ["tx-commit", "publish", "commit"]


async def test_while_retrying_health_says_retrying_and_nothing_is_committed():
    events: list = []
    release = asyncio.Event()

    async def down(tx, items):
        if not release.is_set():
            raise asyncpg.exceptions.TooManyConnectionsError("too many")
        return await store_all(tx, items)

    pipeline, _, _, _ = make(down, events)
    task = asyncio.create_task(pipeline.handle(records(b"1"), RecordingConsumer(events)))
    await asyncio.sleep(0.05)
    part = pipeline.health[("t", 0)]
    assert part.retrying_since is not None and "TooManyConnections" in part.last_error
    state, reason = health.service_state(list(pipeline.health.values()), part.retrying_since + 1)
    assert state == "degraded" and "retrying" in reason
    assert not [e for e in events if e[0] == "commit"]
    release.set()
    await task
    assert part.retrying_since is None and part.committed == 1


async def test_data_error_in_bulk_write_is_bisected_to_the_culprit():
    events: list = []

    async def refuses_nul(tx, items):
        if any("\x00" in str(i) for i in items):
            raise asyncpg.exceptions.CharacterNotInRepertoireError(
                'invalid byte sequence for encoding "UTF8": 0x00'
            )
        return await store_all(tx, items)

    pipeline, uow, published, letters = make(refuses_nul, events)
    values = [json.dumps(f"row{i}").encode() for i in range(10)]
    values[6] = json.dumps("bad\x00row").encode()
    await pipeline.handle(records(*values), RecordingConsumer(events))
    assert sorted(uow.committed) == sorted(f"row{i}" for i in range(10) if i != 6)
    assert [d.source_offset for d in letters] == [6]
    assert "0x00" in letters[0].error and letters[0].error.startswith("cannot store record:")
    assert len(published) == 9
    assert events[-1] == ("commit", {("t", 0): 10})


async def test_refused_items_become_dead_letters():
    events: list = []

    async def refuse_odd(tx, items):
        tx.extend(i for i in items if i % 2 == 0)
        return Done(refused={n: f"unknown {i}" for n, i in enumerate(items) if i % 2})

    pipeline, uow, _, letters = make(refuse_odd, events)
    await pipeline.handle(records(b"1", b"2", b"3"), RecordingConsumer(events))
    assert uow.committed == [2]
    assert [(d.source_offset, d.error) for d in letters] == [(0, "unknown 1"), (2, "unknown 3")]


async def test_a_partition_whose_work_keeps_failing_is_paused_and_rewound_not_skipped():
    events: list = []

    async def fails_on_partition_1(tx, items):
        if any(i == 99 for i in items):
            raise RuntimeError("bug on this record")
        return await store_all(tx, items)

    pipeline, uow, _, letters = make(fails_on_partition_1, events)
    consumer = RecordingConsumer(events)
    batch = records(b"1", b"2", partition=0, first=10) + records(b"99", b"4", partition=1, first=20)
    await pipeline.handle(batch, consumer)
    assert letters == []
    assert sorted(uow.committed) == [1, 2]
    assert consumer.paused == [("t", 1)] and consumer.seeks == [(("t", 1), 20)]
    assert [e for e in events if e[0] == "commit"] == [("commit", {("t", 0): 12})]
    now = pipeline.health[("t", 1)].last_error_at
    report = health.report("svc", 1, list(pipeline.health.values()), now)
    assert report["state"] == "degraded" and "stalled" in report["reason"]
    stalled = [c for c in report["consumers"] if c["partition"] == 1][0]
    assert stalled["stalled"] is True and "bug on this record" in stalled["last_error"]
    pipeline.close()


def test_transient_and_data_errors_are_told_apart():
    assert is_transient(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    assert is_transient(asyncpg.InterfaceError("connection is closed"))
    assert is_transient(TimeoutError())
    assert is_transient(KafkaConnectionError("x"))
    assert not is_transient(asyncpg.exceptions.NumericValueOutOfRangeError("overflow"))
    assert not is_transient(RuntimeError("bug"))
    assert is_transient(OSError("Multiple exceptions: [Errno 111] Connect call failed"))
    assert is_transient(ConnectionResetError(104, "reset"))
    assert not is_transient(FileNotFoundError(2, "no such playbook"))
    assert is_data_error(asyncpg.exceptions.NumericValueOutOfRangeError("overflow"))
    assert is_data_error(asyncpg.exceptions.UniqueViolationError("dup"))
    wrapped = RuntimeError("while storing")
    wrapped.__cause__ = asyncpg.exceptions.CharacterNotInRepertoireError("0x00")
    assert is_data_error(wrapped) and not is_transient(wrapped)


@pytest.mark.parametrize(
    ("committed", "log_end", "expected"),
    [(None, None, None), (None, 5, 5), (3, 10, 7), (12, 10, 0)],
)
def test_lag_is_the_log_end_minus_the_committed_offset(committed, log_end, expected):
    assert health.lag(committed, log_end) == expected


def test_a_partition_retrying_too_long_counts_as_stalled():
    p = health.PartitionHealth("g", "t", 0, retrying_since=100.0, last_error="OSError")
    assert not health.is_stalled(p, 100.0 + health.STALL_AFTER_S - 1)
    assert health.is_stalled(p, 100.0 + health.STALL_AFTER_S)
    assert health.service_state([health.PartitionHealth("g", "t", 1)], 0) == ("running", None)


async def test_work_with_its_own_transactions_holds_none_open_and_is_tracked_after():
    from finfocus.consume import TrackAfter

    events: list = []
    inner = InMemoryUnitOfWork()
    seen: list = []

    async def own_transactions(tx, items):
        seen.append(tx)
        return Done(refused={0: "unknown command"})

    pipeline, _, _, letters = make(own_transactions, events)
    pipeline.uow = TrackAfter(inner)
    await pipeline.handle(records(b"1", b"2", first=5), RecordingConsumer(events))
    assert seen == [None]
    assert [(g, r.first, r.last) for g, r in inner.tracked] == [("g", 5, 6)]
    assert [(d.source_offset, d.error) for d in letters] == [(5, "unknown command")]
    assert events[-1] == ("commit", {("t", 0): 7})


def test_a_record_whose_context_has_not_arrived_yet_is_retried_not_dead_lettered():
    from finfocus.faults import NotArrivedYet, is_data_error, is_transient

    exc = NotArrivedYet("no priced resource of service=EC2 here yet")
    assert is_transient(exc) and not is_data_error(exc)
