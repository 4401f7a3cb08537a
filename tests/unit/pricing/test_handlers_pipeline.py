"""The pricing handler on FastStream's test broker, with a fake store and publisher: a bad
record is one dead letter, the rest stored and published once the store committed, and a line
the store refuses as data is bisected out."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import orjson
from faststream.kafka import TestKafkaBroker

from finfocus.service import ServiceRuntime
from finfocus.settings import FinFocusSettings
from schemas.topics import Topics
from services.pricing.batch import BatchPricer
from services.pricing.handlers import register_handlers


def record(i: int, **extra) -> bytes:
    return orjson.dumps(
        {
            "ProviderName": "AWS",
            "BillingAccountId": "123456789012",
            "ChargePeriodStart": "2024-09-01T00:00:00Z",
            "ChargePeriodEnd": "2024-09-01T01:00:00Z",
            "BillingCurrency": "USD",
            "ServiceName": "AmazonEC2",
            "ChargeCategory": "Usage",
            "BilledCost": str(Decimal(i) / 100),
            "x_RecordId": f"rec-{i}",
            **extra,
        }
    )


class FakeStore:
    """Stores lines unless one carries `refuse` in its JSON (as PostgreSQL refuses a value)."""

    def __init__(self, events: list) -> None:
        self.lines: dict[str, str] = {}
        self.events = events

    async def store_batch(self, lines, positions, scopes=(), owners=None):
        if any("refuse-me" in body for _, body in lines):
            raise asyncpg.exceptions.NumericValueOutOfRangeError("numeric field overflow")
        self.lines.update(lines)
        self.events.append(("stored", len(lines)))
        return {}


class FakePublisher:
    def __init__(self, events: list) -> None:
        self.events = events
        self.records: list = []

    async def publish_batched(self, topic, records):
        self.events.append(("published", topic, len(records)))
        self.records += records


async def test_pricing_handler_stores_publishes_after_the_store_and_dead_letters_one_record_at_a_time(
    tmp_path,
):
    settings = FinFocusSettings(
        home=tmp_path, kafka_bootstrap="localhost:1", database_url="postgresql://x@localhost:1/x"
    )
    runtime = ServiceRuntime("pricing", settings)
    events: list = []
    store, runtime.publisher = FakeStore(events), FakePublisher(events)
    register_handlers(runtime, store, BatchPricer(runtime.tracer))
    letters: list = []

    @runtime.broker.subscriber(Topics.dlq(Topics.RAW_BILLING))
    async def dead(body: dict) -> None:
        letters.append(body)

    batch = [record(1), b"not json", record(2), record(3, ChargeDescription="refuse-me"), record(4)]
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(*batch, topic=Topics.RAW_BILLING)

    assert sorted(store.lines) == ["rec-1", "rec-2", "rec-4"]
    assert sorted(orjson.loads(v)["x_RecordId"] for _, v, _ in runtime.publisher.records) == [
        "rec-1",
        "rec-2",
        "rec-4",
    ]
    first_store = events.index(next(e for e in events if e[0] == "stored"))
    assert all(events.index(e) > first_store for e in events if e[0] == "published")
    reasons = {letter["original"]: letter["error"] for letter in letters}
    assert len(letters) == 2 and reasons["not json"].startswith("Invalid JSON")
    refused = [e for o, e in reasons.items() if "refuse-me" in o]
    assert refused == ["cannot store record: NumericValueOutOfRangeError: numeric field overflow"]
