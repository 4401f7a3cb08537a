"""The forecast handlers on FastStream's test broker and an in-memory unit of work: priced
records become cost lines in the batch's transaction, a bad one is dead-lettered, the refitter
is poked once the batch committed (and not for a batch that changed nothing)."""

from __future__ import annotations

import orjson
from faststream.kafka import TestKafkaBroker

from finfocus.consume import InMemoryUnitOfWork
from finfocus.service import ServiceRuntime
from finfocus.settings import FinFocusSettings
from schemas.topics import Topics
from services.forecast.handlers import register_handlers


def priced(i: int) -> bytes:
    return orjson.dumps(
        {
            "ProviderName": "AWS",
            "BillingAccountId": "1",
            "SubAccountId": "a",
            "ChargePeriodStart": "2024-09-02T00:00:00Z",
            "ChargePeriodEnd": "2024-09-03T00:00:00Z",
            "BillingCurrency": "USD",
            "ServiceName": "AmazonEC2",
            "ChargeCategory": "Usage",
            "BilledCost": "1.50",
            "EffectiveCost": "1.50",
            "x_RecordId": f"r{i}",
            "x_PriceSource": "billed",
        }
    )


class FakeStore:
    def __init__(self) -> None:
        self.calls: list = []

    async def write_lines(self, tx, lines) -> int:
        tx.extend(lines)
        self.calls.append(len(lines))
        return len(lines) if self.calls == [len(lines)] else 0  # a redelivery changes nothing


class Refitter:
    pokes = 0

    def poke(self) -> None:
        self.pokes += 1


async def test_priced_records_are_stored_in_one_transaction_and_the_refit_waits_for_the_commit(
    tmp_path,
):
    settings = FinFocusSettings(
        home=tmp_path, kafka_bootstrap="localhost:1", database_url="postgresql://x@localhost:1/x"
    )
    runtime = ServiceRuntime("forecast", settings)
    runtime.uow = uow = InMemoryUnitOfWork()
    store, refitter = FakeStore(), Refitter()
    register_handlers(runtime, store, refitter)
    letters: list = []

    @runtime.broker.subscriber(Topics.dlq(Topics.PRICED_RESOURCES))
    async def dead(body: dict) -> None:
        letters.append(body)

    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(
            priced(1), b'{"ProviderName": "AWS"}', priced(2), topic=Topics.PRICED_RESOURCES
        )
        assert [line.record_id for line in uow.committed] == ["r1", "r2"]
        assert uow.transactions == 1 and refitter.pokes == 1
        await broker.publish_batch(priced(1), topic=Topics.PRICED_RESOURCES)
    assert refitter.pokes == 1
    assert len(letters) == 1 and letters[0]["error"].startswith("invalid PricedRecord:")
