"""`ServiceRuntime.consume` on FastStream's test broker: manual commits (auto-commit off), a bad
record dead-lettered on `<topic>.dlq`, the rest stored by the unit of work."""

from __future__ import annotations

import json

from faststream.kafka import TestKafkaBroker
from faststream.middlewares import AckPolicy

from finfocus.consume import InMemoryUnitOfWork
from finfocus.service import ServiceRuntime
from finfocus.settings import FinFocusSettings


async def test_runtime_consume_commits_manually_and_dead_letters_only_the_bad_record(tmp_path):
    settings = FinFocusSettings(
        home=tmp_path, kafka_bootstrap="localhost:1", database_url="postgresql://x@localhost:1/x"
    )
    runtime = ServiceRuntime("demo", settings)
    uow = InMemoryUnitOfWork()

    async def store(tx, items):
        tx.extend(items)

    pipeline = runtime.consume(
        "things",
        group="finfocus-demo",
        label="thing",
        decode=lambda env: json.loads(env.value),
        work=store,
        uow=uow,
    )
    letters: list = []

    @runtime.broker.subscriber("things.dlq")
    async def dead(body: dict) -> None:
        letters.append(body)

    subscriber = pipeline.subscriber
    assert subscriber.ack_policy is AckPolicy.MANUAL
    assert subscriber._connection_args["enable_auto_commit"] is False

    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(b'{"n": 1}', b"not json", b'{"n": 3}', topic="things")
    assert uow.committed == [{"n": 1}, {"n": 3}]
    assert [(g, r.topic, r.records) for g, r in uow.tracked] == [("finfocus-demo", "things", 3)]
    assert len(letters) == 1 and letters[0]["error"].startswith("invalid thing:")
    assert letters[0]["service"] == "demo" and letters[0]["original"] == "not json"
