"""Pricing at the trust boundary, on the real broker and PostgreSQL: producers on raw-billing
cannot set what only ingest may set (billing scope and version), and a record id never moves a
line from one account to another."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from finfocus.signing import SigningKeys, sign
from schemas.topics import Topics
from tests.integration.test_pricing_pipeline import (  # noqa: F401 - fixtures
    _at_least,
    billed_record,
    ingest_key,
    pricing,
    produce,
    read_topic,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VICTIM = "111111111111"
SCOPE = f"AWS:{VICTIM}:2024-09"


async def account_totals(url: str) -> dict[str, Decimal]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT billing_account_id, sum(billed_cost) AS total FROM pricing.v_cost_lines GROUP BY 1"
        )
    finally:
        await conn.close()
    return {r["billing_account_id"]: r["total"] for r in rows}


async def test_a_billing_scope_not_signed_by_ingest_is_dead_lettered_and_hides_nothing(
    settings,
    ingest_key,  # noqa: F811
    pricing,  # noqa: F811
    monkeypatch,
):
    month = [
        billed_record(i, Decimal("10"), x_BillingScope=SCOPE, x_BillingScopeVersion=1)
        for i in range(3)
    ]
    await produce(settings.kafka_bootstrap, [orjson.dumps(r) for r in month], signer="ingest")
    await wait_for(lambda: _at_least(settings.database_url, 3))
    assert await account_totals(settings.database_url) == {VICTIM: Decimal("30")}

    # one row "for" the victim's month with a huge version: unsigned, signed by another
    # issuer, and signed by ingest for another topic (replayed)
    hijack = orjson.dumps(
        billed_record(
            50,
            Decimal("0.01"),
            BillingAccountId="222",
            x_RecordId="hijack",
            x_BillingScope=SCOPE,
            x_BillingScopeVersion=10**15,
        )
    )
    version_only = orjson.dumps(
        billed_record(51, Decimal("0.01"), x_RecordId="v-only", x_BillingScopeVersion=10**15)
    )
    await produce(settings.kafka_bootstrap, [hijack, version_only])
    monkeypatch.setenv("FINFOCUS_SECRET_BUS_SIGNING_REMEDIATION", "another-issuers-key")
    await produce(settings.kafka_bootstrap, [hijack], signer="remediation")
    replayed = sign(SigningKeys(), "ingest", Topics.PRICED_RESOURCES, hijack)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(Topics.RAW_BILLING, hijack, headers=[replayed])
    finally:
        await producer.stop()
    await wait_for(lambda: _at_least(settings.database_url, 6))

    assert await account_totals(settings.database_url) == {VICTIM: Decimal("30")}
    letters = await read_topic(settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 4)
    assert len(letters) == 4
    assert all("set by ingest only" in letter["error"] for letter in letters)
    assert any("unsigned message" in letter["error"] for letter in letters)
    assert any("'remediation' may not publish" in letter["error"] for letter in letters)
    assert any("bad signature from 'ingest'" in letter["error"] for letter in letters)
    priced = await read_topic(settings.kafka_bootstrap, Topics.PRICED_RESOURCES, 3, timeout=5)
    assert {p["x_RecordId"] for p in priced} == {r["x_RecordId"] for r in month}


async def test_a_record_id_stored_for_another_account_is_dead_lettered_not_replaced(
    settings,
    pricing,  # noqa: F811
):
    mine = [billed_record(i, Decimal("5")) for i in range(3)]
    await produce(settings.kafka_bootstrap, [orjson.dumps(r) for r in mine])
    await wait_for(lambda: _at_least(settings.database_url, 3))

    # the same ids under another account, in a later batch and twice within one batch
    theirs = orjson.dumps(billed_record(0, Decimal("999"), BillingAccountId="222"))
    pair = [
        orjson.dumps(billed_record(7, Decimal("1"), BillingAccountId="333", x_RecordId="shared")),
        orjson.dumps(billed_record(8, Decimal("2"), BillingAccountId="444", x_RecordId="shared")),
    ]
    await produce(settings.kafka_bootstrap, [theirs])
    await wait_for(lambda: _at_least(settings.database_url, 4))
    await produce(settings.kafka_bootstrap, pair)
    await wait_for(lambda: _at_least(settings.database_url, 6))

    assert await account_totals(settings.database_url) == {
        VICTIM: Decimal("15"),
        "333": Decimal("1"),
    }
    letters = await read_topic(settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 2)
    assert len(letters) == 2
    assert all(
        "scoped to (ProviderName, BillingAccountId)" in letter["error"] for letter in letters
    )
    assert {orjson.loads(letter["original"])["BillingAccountId"] for letter in letters} == {
        "222",
        "444",
    }
    priced = await read_topic(settings.kafka_bootstrap, Topics.PRICED_RESOURCES, 4, timeout=5)
    assert sorted((p["x_RecordId"], p["BillingAccountId"]) for p in priced) == [
        ("rec-0", VICTIM),
        ("rec-1", VICTIM),
        ("rec-2", VICTIM),
        ("shared", "333"),
    ]


async def test_records_the_store_could_not_hold_cost_only_themselves(settings, pricing):  # noqa: F811
    # each of these once passed the contract and failed its whole batch in the store
    good = [billed_record(i, Decimal(i % 97) / 100) for i in range(5000)]
    hostile = [
        billed_record(90_001, Decimal(1), ServiceName="EC2\u0000"),
        billed_record(90_002, Decimal(1), x_RecordId="big-version", x_Count=2**63),
        orjson.dumps(billed_record(90_003, Decimal(1)))[:-1]
        + b',"x_BillingScopeVersion":9223372036854775808}',
        {**billed_record(90_004, Decimal(1)), "BilledCost": "1" * 140_000},
        {
            k: v
            for k, v in billed_record(
                90_005,
                Decimal(1),
                ChargePeriodStart="0001-01-01T00:00:00+05:00",
                ChargePeriodEnd="0001-01-01T00:00:00+05:00",
            ).items()
            if k != "x_RecordId"
        },
    ]
    values = [orjson.dumps(r) for r in good[:2500]]
    values += [h if isinstance(h, bytes) else orjson.dumps(h) for h in hostile]
    values += [orjson.dumps(r) for r in good[2500:]]
    await produce(settings.kafka_bootstrap, values)
    await wait_for(lambda: _at_least(settings.database_url, len(values)))
    assert await account_totals(settings.database_url) == {
        VICTIM: sum((Decimal(i % 97) / 100 for i in range(5000)), Decimal(0))
    }
    letters = await read_topic(settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 5)
    reasons = sorted(letter["error"] for letter in letters)
    assert len(reasons) == 5, reasons
    for expected in (
        "NUL character",
        "x_Count: integer",
        "less than or equal to 9223372036854775807",
        "more than 24 digits before the decimal point",
        "outside years 1 to 9999",
    ):
        assert any(expected in reason for reason in reasons), (expected, reasons)
