"""One record published on raw-billing yields spans in pricing, anomaly and remediation that
share its trace id: traces follow records across batch consumers and service boundaries.

The three services run in this process, each with its own tracer provider (its own
`service.name`) exporting to one in-memory exporter; the broker and the database are real.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from finfocus.telemetry import make_tracer_provider, trace_headers
from services.anomaly.app import build_app as build_anomaly
from services.pricing.app import build_app as build_pricing
from services.remediation.app import build_app as build_remediation

pytestmark = pytest.mark.integration

START = date(2026, 3, 2)
DAYS = 28


def daily(day: date, cost: str, rid: str | None = None, **extra) -> dict:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    row = {
        "ProviderName": "AWS",
        "BillingAccountId": "999",
        "SubAccountId": "111",
        "ChargePeriodStart": start.isoformat(),
        "ChargePeriodEnd": (start + timedelta(days=1)).isoformat(),
        "BillingCurrency": "USD",
        "ServiceName": "AmazonEC2",
        "ChargeCategory": "Usage",
        "BilledCost": cost,
        "RegionId": "us-east-1",
        "ResourceId": "i-0abc",
        **extra,
    }
    if rid:
        row["x_RecordId"] = rid
    return row


async def wait_for(predicate, timeout: float = 40.0, step: float = 0.2):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError("condition not met in time")


async def test_one_raw_record_is_traced_through_pricing_anomaly_and_remediation(settings):
    exporter = InMemorySpanExporter()
    providers = {
        name: make_tracer_provider(f"finfocus-{name}", [SimpleSpanProcessor(exporter)])
        for name in ("pricing", "anomaly", "remediation", "producer")
    }
    apps = [
        build_pricing(settings, tracer_provider=providers["pricing"]),
        build_anomaly(settings, tracer_provider=providers["anomaly"]),
        build_remediation(settings, tracer_provider=providers["remediation"]),
    ]
    for app in apps:
        await app.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
    await producer.start()
    try:
        # four weeks of ordinary history, straight onto priced-resources (untraced)
        for d in range(DAYS - 1):
            row = daily(
                START + timedelta(days=d), "100.00", rid=f"hist-{d}", x_PriceSource="billed"
            )
            await producer.send("priced-resources", json.dumps(row).encode(), key=b"AWS:111")
        await producer.flush()

        async def history_stored():
            conn = await asyncpg.connect(settings.database)
            try:
                return await conn.fetchval("SELECT count(*) FROM anomaly.cost_lines") == DAYS - 1
            finally:
                await conn.close()

        await wait_for(history_stored)

        # the one traced record: an upstream producer's span, then raw-billing
        tracer = providers["producer"].get_tracer("upstream")
        with tracer.start_as_current_span("upstream.publish") as upstream:
            headers = trace_headers(upstream)
        trace_id = upstream.get_span_context().trace_id
        spike = daily(START + timedelta(days=DAYS - 1), "900.00")
        await producer.send_and_wait(
            "raw-billing", json.dumps(spike).encode(), key=b"AWS:111", headers=headers
        )

        consumer = AIOKafkaConsumer(
            "remediation-commands",
            bootstrap_servers=settings.kafka,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        try:

            async def command():
                batch = await consumer.getmany(timeout_ms=200)
                return [r for records in batch.values() for r in records]

            commands = await wait_for(command)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
        for app in reversed(apps):
            await app.stop()

    traceparent = dict(commands[0].headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == format(trace_id, "032x")

    in_trace = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    services = {s.resource.attributes["service.name"] for s in in_trace}
    assert {"finfocus-pricing", "finfocus-anomaly", "finfocus-remediation"} <= services, sorted(
        (s.resource.attributes["service.name"], s.name) for s in in_trace
    )
