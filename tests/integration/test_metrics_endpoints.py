"""Metrics and health endpoints of real services on the real broker and PostgreSQL: during a
small import each service's `/metrics` shows the pipeline and business series with live
values, and `/readyz` turns 503 while the database refuses connections, 200 again after."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from finfocus.embedded.ports import free_port
from schemas.topics import Topics
from services.ingest.app import build_app as build_ingest
from services.ingest.config import IngestSettings
from services.pricing.app import build_app as build_pricing
from services.pricing.config import PricingSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def find(found: dict, name: str, **labels: str) -> float | None:
    want = set(labels.items())
    values = [v for (n, ls), v in found.items() if n == name and want <= ls]
    return sum(values) if values else None


async def eventually(check, timeout: float = 60.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


def row(i: int, now: datetime, **extra) -> dict:
    day = f"{now:%Y-%m}-01T{i % 24:02d}:00:00Z"
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "000123",
        "ServiceName": "EC2",
        "ChargeCategory": "Usage",
        "ChargePeriodStart": day,
        "ChargePeriodEnd": day.replace(":00:00Z", ":59:59Z"),
        "BillingCurrency": "USD",
        "BilledCost": "2.50",
        "x_RecordId": f"m-{i}",
        **extra,
    }


async def test_each_service_serves_live_series_and_readiness_follows_the_database(
    settings, pg_admin_url, monkeypatch, tmp_path: Path
):
    monkeypatch.setenv("FINFOCUS_SECRET_INGEST_TOKEN", "t0ken")
    intake = free_port()
    base = {**settings.model_dump(), "metrics_sample_seconds": 0.5}
    ingest = build_ingest(IngestSettings(**base, ingest_http_port=intake))
    pricing = build_pricing(PricingSettings(**base))
    await ingest.start()
    await pricing.start()
    try:
        home = Path(settings.home)
        urls = {}
        for path in (home / "run" / "health").glob("*.json"):
            doc = orjson.loads(path.read_bytes())
            urls[doc["service"]] = doc["metrics_url"]
        if set(urls) != {"ingest", "pricing"}:  # the files come with the first health period
            await asyncio.sleep(2.5)
            urls = {
                orjson.loads(p.read_bytes())["service"]: orjson.loads(p.read_bytes())["metrics_url"]
                for p in (home / "run" / "health").glob("*.json")
            }
        assert set(urls) == {"ingest", "pricing"} and urls["ingest"] != urls["pricing"]

        async with httpx.AsyncClient(timeout=10) as client:
            for url in urls.values():
                assert (await client.get(f"{url}/healthz")).text == "ok\n"
            ready = await eventually(lambda: _ok(client, f"{urls['pricing']}/readyz"), 30)
            assert ready, (await client.get(f"{urls['pricing']}/readyz")).text

            # counters live in this process's registry, which other tests' in-process services
            # (on the same pytest worker) also counted into: this test owns only what it adds
            before = samples((await client.get(f"{urls['pricing']}/metrics")).text)
            letters_before = (
                find(
                    before,
                    "finfocus_records_total",
                    service="pricing",
                    topic="raw-billing",
                    outcome="dead_letter",
                )
                or 0
            )
            stored_before = (
                find(
                    before,
                    "finfocus_records_total",
                    service="pricing",
                    topic="raw-billing",
                    outcome="stored",
                )
                or 0
            )
            invalid_before = (
                find(
                    before,
                    "finfocus_dead_letters_total",
                    service="pricing",
                    topic="raw-billing",
                    reason="invalid",
                )
                or 0
            )
            now = datetime.now(UTC)
            rows = [row(i, now) for i in range(40)]
            response = await client.post(
                f"http://127.0.0.1:{intake}/v1/billing-records",
                content=orjson.dumps(rows),
                headers={"Authorization": "Bearer t0ken"},
            )
            assert response.status_code == 200, response.text
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
            await producer.start()
            try:
                await producer.send_and_wait(Topics.RAW_BILLING, b"not json", key=b"AWS:x")
            finally:
                await producer.stop()

            async def pricing_stored():
                found = samples((await client.get(f"{urls['pricing']}/metrics")).text)
                stored = find(
                    found,
                    "finfocus_records_total",
                    service="pricing",
                    topic="raw-billing",
                    outcome="stored",
                )
                cost = find(found, "finfocus_cost_current_month", provider="AWS", currency="USD")
                letters = find(
                    found,
                    "finfocus_dead_letters_total",
                    service="pricing",
                    topic="raw-billing",
                    reason="invalid",
                )
                return (
                    found
                    if stored
                    and stored >= stored_before + 40
                    and cost
                    and letters
                    and letters > invalid_before
                    else None
                )

            found = await eventually(pricing_stored, 60)
            assert found, (
                "pricing never showed 40 stored records, a dead letter and this month's cost"
            )
            assert (
                find(
                    found,
                    "finfocus_records_total",
                    service="pricing",
                    topic="raw-billing",
                    outcome="dead_letter",
                )
                == letters_before + 1
            )
            assert (
                find(found, "finfocus_cost_current_month", provider="AWS", currency="USD") == 100.0
            )
            assert find(found, "finfocus_consumer_lag", service="pricing", topic="raw-billing") == 0
            assert find(found, "finfocus_consumer_assigned_partitions", service="pricing") >= 1
            assert (
                find(
                    found,
                    "finfocus_batch_duration_seconds_count",
                    service="pricing",
                    topic="raw-billing",
                )
                >= 1
            )
            assert (
                find(
                    found,
                    "finfocus_db_write_duration_seconds_count",
                    service="pricing",
                    topic="raw-billing",
                )
                >= 1
            )
            assert find(found, "finfocus_ready", service="pricing") == 1

            async def ingest_jobs():
                found = samples((await client.get(f"{urls['ingest']}/metrics")).text)
                return (
                    found
                    if find(found, "finfocus_ingest_rows_total", outcome="published")
                    else None
                )

            found = await eventually(ingest_jobs, 30)
            assert found and find(found, "finfocus_ingest_jobs") >= 1
            assert find(found, "finfocus_service_info", service="ingest") == 1

            # the database goes away: no new connections, every existing one terminated
            name = settings.database.rsplit("/", 1)[1]
            admin = await asyncpg.connect(pg_admin_url)
            try:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                await asyncio.sleep(1.1)  # past the one-second readiness cache
                response = await client.get(f"{urls['pricing']}/readyz")
                assert response.status_code == 503 and "database unreachable" in response.text, (
                    response.text
                )
                assert (
                    await client.get(f"{urls['pricing']}/healthz")
                ).status_code == 200  # alive all the same
                found = samples((await client.get(f"{urls['pricing']}/metrics")).text)
                assert find(found, "finfocus_ready", service="pricing") == 0
            finally:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                await admin.close()
            assert await eventually(lambda: _ok(client, f"{urls['pricing']}/readyz"), 30)
    finally:
        await pricing.stop()
        await ingest.stop()


async def _ok(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False
