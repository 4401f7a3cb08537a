"""The pricing service on the real broker and PostgreSQL, checked through `finfocus cost actual`."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from typer.testing import CliRunner

from finfocus.cli import app as cli
from finfocus.signing import SigningKeys, sign
from schemas.topics import Topics
from services.pricing.app import build_app
from services.pricing.config import PricingSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def billed_record(i: int, cost: Decimal, **extra) -> dict:
    day = 1 + i % 28
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "111111111111",
        "SubAccountId": f"acct-{i % 7}",
        "ChargePeriodStart": f"2024-09-{day:02d}T00:00:00Z",
        "ChargePeriodEnd": f"2024-09-{day:02d}T01:00:00Z",
        "BillingCurrency": "USD",
        "ServiceName": ["AmazonEC2", "AmazonS3", "AmazonRDS"][i % 3],
        "ChargeCategory": "Usage",
        "BilledCost": str(cost),
        "ResourceId": f"i-{i:08d}",
        "RegionId": "us-east-1",
        "Tags": {"team": ["core", "data"][i % 2]},
        "x_RecordId": f"rec-{i}",
        **extra,
    }


async def produce(
    bootstrap: str,
    values: list[bytes],
    topic: str = Topics.RAW_BILLING,
    *,
    signer: str | None = None,
) -> None:
    """Send `values`; with `signer`, each signed as that issuer (ingest signs scoped records)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    keys = SigningKeys()
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, v, key=b"AWS:x", headers=[sign(keys, signer, topic, v)] if signer else None
            )
            for v in values
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def processed(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT coalesce(sum(records), 0) FROM pricing.consumer_positions"
        )
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[dict] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                got.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def cli_json(settings, *args: str) -> dict:
    """`finfocus cost actual ... --output json` (in a thread: the command runs its own loop)."""
    env = {
        "FINFOCUS_DATABASE_URL": settings.database_url,
        "FINFOCUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
    }
    invoke = CliRunner().invoke
    result = await asyncio.to_thread(
        invoke, cli, ["cost", "actual", *args, "--output", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
async def pricing(settings):
    app = build_app(PricingSettings(**settings.model_dump()))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_billed_records_reconcile_to_the_cent_and_redelivery_changes_nothing(
    settings, pricing
):
    rng = random.Random(7)
    costs = [Decimal(rng.randint(-500, 2_000_000)) / Decimal(10_000) for _ in range(20_000)]
    records = [orjson.dumps(billed_record(i, c)) for i, c in enumerate(costs)]
    malformed = [
        b"not json at all",
        orjson.dumps({"ProviderName": "AWS", "BilledCost": "1"}),
        orjson.dumps(billed_record(900_001, Decimal(1), BilledCost="twelve")),
        orjson.dumps(billed_record(900_002, Decimal(1), BillingCurrency="XYZ")),
        orjson.dumps(billed_record(900_003, Decimal(1), ChargePeriodEnd="2024-08-01T00:00:00Z")),
    ]
    # the bad ones are interleaved with good ones: good records keep flowing around them
    await produce(settings.kafka_bootstrap, records[:10_000] + malformed + records[10_000:])
    await wait_for(lambda: _at_least(settings.database_url, 20_005))
    expected = sum(costs, Decimal(0))

    summary = (await cli_json(settings))["summary"]
    assert Decimal(summary["totalCost"]) == expected
    assert summary["currency"] == "USD" and summary["lines"] == 20_000

    await produce(settings.kafka_bootstrap, records[::2])  # redeliver half
    await wait_for(lambda: _at_least(settings.database_url, 30_005))
    again = (await cli_json(settings))["summary"]
    assert Decimal(again["totalCost"]) == expected and again["lines"] == 20_000

    letters = await read_topic(settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 5)
    reasons = {letter["original"]: letter["error"] for letter in letters}
    assert len(letters) == 5
    assert "Invalid JSON" in reasons["not json at all"]
    errors = list(reasons.values())
    assert any("BillingAccountId" in e and "Field required" in e for e in errors)
    assert any("BilledCost" in e and "decimal" in e.lower() for e in errors)
    assert any("unknown currency 'XYZ'" in e for e in errors)
    assert any("ChargePeriodEnd is before ChargePeriodStart" in e for e in errors)
    assert all(
        letter["service"] == "pricing" and letter["source_topic"] == "raw-billing"
        for letter in letters
    )

    priced = await read_topic(settings.kafka_bootstrap, Topics.PRICED_RESOURCES, 30_000)
    assert {p["x_RecordId"] for p in priced} == {f"rec-{i}" for i in range(20_000)}
    assert {p["x_PriceSource"] for p in priced} == {"billed"}


async def _at_least(url: str, n: int) -> bool:
    return await processed(url) >= n


async def test_group_by_filter_window_and_currencies_are_kept_apart(settings, pricing):
    rows = [
        billed_record(0, Decimal("1.10")),
        billed_record(1, Decimal("2.25")),
        billed_record(2, Decimal("3.00")),
        billed_record(3, Decimal("4.05"), BillingCurrency="EUR"),
    ]
    await produce(settings.kafka_bootstrap, [orjson.dumps(r) for r in rows])
    await wait_for(lambda: _at_least(settings.database_url, 4))

    both = (await cli_json(settings))["summary"]
    assert "totalCost" not in both
    assert both["totals"] == [
        {"currency": "EUR", "totalCost": "4.05"},
        {"currency": "USD", "totalCost": "6.35"},
    ]

    usd = await cli_json(settings, "--filter", "currency=USD", "--group-by", "tag:team,daily")
    assert usd["summary"]["totalCost"] == "6.35"
    groups = {(r["group"]["tag:team"], r["group"]["daily"]): r["cost"] for r in usd["results"]}
    assert groups == {
        ("core", "2024-09-01"): "1.10",
        ("data", "2024-09-02"): "2.25",
        ("core", "2024-09-03"): "3.00",
    }

    window = await cli_json(
        settings, "--from", "2024-09-02", "--to", "2024-09-03", "--filter", "service!=AmazonS3"
    )
    assert window["summary"]["totalCost"] == "0"  # day 2 is AmazonS3
    window = await cli_json(
        settings, "--from", "2024-09-02", "--to", "2024-09-04", "--filter", "tag:team=core"
    )
    assert window["summary"]["totalCost"] == "3.00"
    assert window["summary"]["from"] == "2024-09-02T00:00:00Z"

    injected = await cli_json(
        settings, "--filter", "service=x' OR '1'='1", "--group-by", "tag:x') OR (1=1"
    )
    assert injected["results"] == [] and injected["summary"]["lines"] == 0


@pytest.fixture
def ingest_key(monkeypatch):
    """The key ingest signs billing scopes with (from the secrets provider's environment)."""
    monkeypatch.setenv("FINFOCUS_SECRET_BUS_SIGNING_INGEST", "test-ingest-signing-key")


async def test_restated_scope_version_hides_previous_rows(settings, ingest_key, pricing):
    scope = "AWS:111111111111:2024-09"
    v1 = [
        billed_record(i, Decimal("10"), x_BillingScope=scope, x_BillingScopeVersion=1)
        for i in range(3)
    ]
    v2 = [
        billed_record(
            i, Decimal("7.5"), x_BillingScope=scope, x_BillingScopeVersion=2, x_RecordId=f"v2-{i}"
        )
        for i in range(2)
    ]
    unscoped = billed_record(99, Decimal("1"))
    await produce(
        settings.kafka_bootstrap, [orjson.dumps(r) for r in [*v1, unscoped]], signer="ingest"
    )
    await wait_for(lambda: _at_least(settings.database_url, 4))
    assert (await cli_json(settings))["summary"]["totalCost"] == "31"
    await produce(settings.kafka_bootstrap, [orjson.dumps(r) for r in v2], signer="ingest")
    await wait_for(lambda: _at_least(settings.database_url, 6))
    assert (await cli_json(settings))["summary"]["totalCost"] == "16.0"
    # a late copy of version 1 stays hidden
    await produce(settings.kafka_bootstrap, [orjson.dumps(v1[2])], signer="ingest")
    await wait_for(lambda: _at_least(settings.database_url, 7))
    summary = (await cli_json(settings))["summary"]
    assert summary["totalCost"] == "16.0" and summary["lines"] == 3


async def test_batched_publish_keeps_keys_headers_and_default_partitions(settings):
    from finfocus.broker import RecordPublisher

    publisher = RecordPublisher(settings.kafka_bootstrap)
    await publisher.start()
    try:
        records = [
            (f"AWS:{i % 5}".encode(), f"v{i}".encode(), [("traceparent", f"t{i}".encode())])
            for i in range(300)
        ]
        assert await publisher.publish("one-by-one", records) == 300
        assert await publisher.publish_batched("batched", records) == 300
    finally:
        await publisher.stop()

    async def placement(topic: str) -> dict:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        seen: dict[bytes, tuple] = {}
        try:
            while len(seen) < 300:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        seen[r.value] = (r.key, r.partition, r.offset, dict(r.headers))
        finally:
            await consumer.stop()
        return seen

    one, batched = await placement("one-by-one"), await placement("batched")
    assert {v: (k, p, h) for v, (k, p, _, h) in one.items()} == {
        v: (k, p, h) for v, (k, p, _, h) in batched.items()
    }
    # order within a key (partition) is kept
    for key in {k for k, *_ in batched.values()}:
        offsets = [
            o
            for v, (k, _, o, _) in sorted(batched.items(), key=lambda x: int(x[0][1:]))
            if k == key
        ]
        assert offsets == sorted(offsets)


async def test_a_traced_record_keeps_its_trace_through_pricing(settings, pricing):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            Topics.RAW_BILLING,
            orjson.dumps(billed_record(1, Decimal("2.5"))),
            headers=[("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())],
        )
        await producer.send_and_wait(
            Topics.RAW_BILLING, orjson.dumps(billed_record(2, Decimal("1")))
        )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        Topics.PRICED_RESOURCES,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: dict[str, dict] = {}
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < 2 and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    got[orjson.loads(r.value)["x_RecordId"]] = dict(r.headers)
    finally:
        await consumer.stop()
    traced = got["rec-1"]["traceparent"].decode().split("-")
    assert traced[1] == trace_id and traced[2] != "00f067aa0ba902b7"  # same trace, pricing's span
    untraced = got["rec-2"]["traceparent"].decode().split("-")
    assert untraced[1] != trace_id  # the batch span's trace
    assert got["rec-1"]["finfocus-schema"] == b"PricedRecord"
