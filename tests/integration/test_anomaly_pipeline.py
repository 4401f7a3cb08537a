"""The anomaly service on the real broker and PostgreSQL: priced records in, anomalies out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from finfocus.db import reader
from schemas.anomaly import AnomalyV1
from services.anomaly.app import build_app

pytestmark = pytest.mark.integration

START = date(2026, 3, 2)


def priced(
    day: date,
    cost: str,
    *,
    rid: str,
    service="AmazonEC2",
    account="111",
    region="us-east-1",
    resource="i-1",
    **extra,
) -> dict:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "999",
        "SubAccountId": account,
        "ChargePeriodStart": start.isoformat(),
        "ChargePeriodEnd": (start + timedelta(days=1)).isoformat(),
        "BillingCurrency": "USD",
        "ServiceName": service,
        "ChargeCategory": "Usage",
        "BilledCost": cost,
        "EffectiveCost": cost,
        "RegionId": region,
        "ResourceId": resource,
        "x_RecordId": rid,
        "x_PriceSource": "billed",
        **extra,
    }


def history(days: int = 30, spike_day: int = 27) -> list[dict]:
    out = []
    for d in range(days):
        day = START + timedelta(days=d)
        base = Decimal("100.00") + Decimal(d % 5)  # small, regular noise
        out.append(priced(day, str(base), rid=f"ec2-{d}"))
        out.append(priced(day, "20.00", rid=f"s3-{d}", service="AmazonS3", resource="bucket"))
        if d == spike_day:
            out.append(
                priced(day, "400.00", rid=f"ec2-spike-{d}", resource="i-2", region="eu-west-1")
            )
    return out


async def publish(bootstrap: str, rows: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for row in rows:
            await producer.send("priced-resources", json.dumps(row).encode(), key=b"AWS:111")
        await producer.flush()
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
        await asyncio.sleep(0.5)  # anything extra that is on its way
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got.extend(records)
    finally:
        await consumer.stop()
    return got


async def test_spike_after_a_month_of_history_raises_one_anomaly(settings, monkeypatch):
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, history())
        got = await consume(settings.kafka, "anomalies", want=1)
    finally:
        await app.stop()
    anomalies = [AnomalyV1.model_validate_json(r.value) for r in got]
    ids = {a.anomaly_id for a in anomalies}
    assert len(ids) == 1, [a.model_dump(mode="json") for a in anomalies]
    a = anomalies[-1]
    assert a.dimension == {"ProviderName": "AWS", "SubAccountId": "111", "ServiceName": "AmazonEC2"}
    assert a.window_start.date() == START + timedelta(days=27)
    assert a.actual_cost == Decimal("502.00")
    assert a.impact == a.actual_cost - a.expected_cost
    assert sum(c.contribution for c in a.root_causes) == a.impact
    assert a.root_causes[0].dimension["ResourceId"] == "i-2"
    assert dict(got[-1].headers)["finfocus-schema"] == b"Anomaly"

    async with reader(settings.database) as conn:
        rows = await conn.fetch("SELECT anomaly_id, record FROM anomaly.v_anomalies")
    assert [r["anomaly_id"] for r in rows] == [a.anomaly_id]
    assert AnomalyV1.model_validate(rows[0]["record"]) == a

    # the CLI reads the same through the read-only role
    from typer.testing import CliRunner

    from finfocus.cli import app as cli

    monkeypatch.setenv("FINFOCUS_DATABASE_URL", settings.database)
    runner = CliRunner()
    listed = await asyncio.to_thread(
        runner.invoke, cli, ["anomalies", "list", "--since", "2026-03-01", "-o", "json"]
    )
    assert listed.exit_code == 0, listed.output
    assert [x["anomaly_id"] for x in json.loads(listed.output)["anomalies"]] == [a.anomaly_id]
    none = await asyncio.to_thread(
        runner.invoke, cli, ["anomalies", "list", "--severity", "low", "-o", "ndjson"]
    )
    assert none.exit_code == 0 and (none.output.strip() == "") == (a.severity != "low")


async def test_redelivered_records_change_nothing_and_bad_ones_are_dead_lettered(settings):
    rows = history()
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, rows)
        await consume(settings.kafka, "anomalies", want=1)
        await publish(settings.kafka, rows[:30])
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
        await producer.start()
        await producer.send_and_wait("priced-resources", b"not json")
        await producer.stop()
        dead = await consume(settings.kafka, "priced-resources.dlq", want=1)
        got = await consume(settings.kafka, "anomalies", want=2, timeout=3)
    finally:
        await app.stop()
    assert len(got) == 1  # the redelivery raised nothing new
    assert b"invalid PricedRecord" in dead[0].value
    conn = await asyncpg.connect(settings.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM anomaly.cost_lines") == len(rows)
    finally:
        await conn.close()


async def test_record_the_database_refuses_is_dead_lettered_and_the_rest_is_kept(settings):
    rows = history()
    poison = priced(
        START, "5.00", rid="nul", resource="i-\u0000"
    )  # valid JSON, refused by PostgreSQL text
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, [*rows[:20], poison, *rows[20:]])
        dead = await consume(settings.kafka, "priced-resources.dlq", want=1)
        got = await consume(settings.kafka, "anomalies", want=1)
    finally:
        await app.stop()
    # the contract now refuses what PostgreSQL cannot store (at the edge); a bulk write that
    # fails anyway is bisected to the culprit ("cannot store record")
    assert len(dead) == 1
    assert b"cannot store record" in dead[0].value or b"PostgreSQL cannot store" in dead[0].value
    assert len({AnomalyV1.model_validate_json(r.value).anomaly_id for r in got}) == 1
    conn = await asyncpg.connect(settings.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM anomaly.cost_lines") == len(rows)
    finally:
        await conn.close()


async def test_anomaly_whose_publish_did_not_complete_is_published_again(settings):
    rows = history()
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, rows)
        [first] = await consume(settings.kafka, "anomalies", want=1)
        conn = await asyncpg.connect(settings.database)
        try:  # as if the process had died between commit and publish
            await conn.execute(
                "UPDATE anomaly.anomalies SET pending_publish = true, detected_at = now() - interval '1 hour'"
            )
        finally:
            await conn.close()
        await publish(settings.kafka, rows[:1])
        got = await consume(settings.kafka, "anomalies", want=2)
    finally:
        await app.stop()
    assert len(got) == 2
    assert json.loads(got[1].value)["anomaly_id"] == json.loads(first.value)["anomaly_id"]
