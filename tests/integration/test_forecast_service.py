"""The forecast service against the real broker and PostgreSQL, and `finfocus forecast show`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from typer.testing import CliRunner

from finfocus.broker import ensure_topics
from finfocus.cli import app as cli
from schemas.topics import Topics
from services.forecast.app import build_app
from services.forecast.config import ForecastSettings

pytestmark = pytest.mark.integration

END = date.today() - timedelta(days=1)
START = END - timedelta(days=29)


def priced(i: int, day: date, service: str, cost: str, **extra) -> dict:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "111",
        "SubAccountId": "222",
        "ChargePeriodStart": start.isoformat(),
        "ChargePeriodEnd": (start + timedelta(days=1)).isoformat(),
        "BillingCurrency": "USD",
        "ServiceName": service,
        "ChargeCategory": "Usage",
        "BilledCost": cost,
        "x_RecordId": f"r-{service}-{i}",
        "x_PriceSource": "billed",
        **extra,
    }


def month_of_records() -> list[dict]:
    out = []
    for i in range(30):
        day = START + timedelta(days=i)
        weekly = 10 + (5 if day.weekday() < 5 else 0)  # weekdays cost more
        out.append(priced(i, day, "EC2", f"{weekly}.25"))
        out.append(priced(i, day, "S3", "2.00", Tags={"team": "data"}))
    return out


def forecast_settings(settings) -> ForecastSettings:
    return ForecastSettings(
        **settings.model_dump(),
        forecast_debounce_seconds=0.3,
        forecast_executor="thread",
        forecast_horizon=35,
    )


async def publish(settings, records: list[dict], topic: str = Topics.PRICED_RESOURCES) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=False
    )
    await producer.start()
    try:
        for r in records:
            value = r if isinstance(r, bytes) else json.dumps(r).encode()
            await producer.send(topic, value, key=b"AWS:222")
        await producer.flush()
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, timeout: float = 10.0) -> list[dict]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        Topics.dlq(Topics.PRICED_RESOURCES),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=10)
        return [json.loads(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()


async def wait_for_refit(app, minimum: int = 1, timeout: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if app.refitter.refits >= minimum and app.refitter.idle.is_set():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no refit within {timeout}s (refits={app.refitter.refits})")


async def test_priced_month_yields_stored_forecasts_and_cli_json(settings):
    await ensure_topics(settings.kafka_bootstrap)
    records = month_of_records()
    await publish(settings, records + records[:10])  # a redelivered tail changes nothing
    await publish(settings, [b"not json"])
    app = build_app(forecast_settings(settings))
    await app.start()
    try:
        await wait_for_refit(app)
        conn = await asyncpg.connect(settings.database_url)
        try:
            total = await conn.fetchval("SELECT sum(cost) FROM forecast.cost_lines")
            count = await conn.fetchval("SELECT count(*) FROM forecast.cost_lines")
            fc = await conn.fetch(
                "SELECT dims, grp::text, model, trained_through, cv_error FROM forecast.series_forecasts"
            )
            points = await conn.fetchval(
                "SELECT count(*) FROM forecast.v_forecasts WHERE dims = 'account,provider,service'"
            )
        finally:
            await conn.close()
        assert count == 60
        assert total == sum(Decimal(r["BilledCost"]) for r in records)
        dims = {r["dims"] for r in fc}
        assert {"", "account,provider,service", "service", "tag:team"} <= dims
        assert all(r["trained_through"] == END for r in fc)
        assert points == 2 * 35
        conn = await asyncpg.connect(settings.database_url)
        try:
            month_end = await conn.fetch(
                "SELECT * FROM forecast.v_month_end WHERE dims = 'account,provider,service'"
            )
        finally:
            await conn.close()
        assert len(month_end) == 2
        for row in month_end:
            assert row["period_start"] == (END + timedelta(days=1)).replace(day=1)
            assert row["projected"] == row["actual_to_date"] + row["forecast_remainder"]
            assert row["lo_95"] <= row["projected"] <= row["hi_95"]
        [letter] = await dead_letters(settings.kafka_bootstrap)
        assert (
            letter["source_topic"] == Topics.PRICED_RESOURCES and "PricedRecord" in letter["error"]
        )

        env = {"FINFOCUS_DATABASE_URL": settings.database_url}
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "forecast",
                "show",
                "--group-by",
                "account,service",
                "--horizon",
                "14",
                "--output",
                "json",
            ],
            env=env,
        )
        assert result.exit_code == 0, result.output
        body = json.loads(result.output)
        assert list(body) == ["forecasts"]
        by_service = {f["group"]["service"]: f for f in body["forecasts"]}
        assert set(by_service) == {"EC2", "S3"}
        ec2 = by_service["EC2"]
        assert list(ec2) == ["group", "model", "trained_through", "points"]
        assert ec2["group"] == {"account": "222", "service": "EC2"}
        assert ec2["trained_through"] == END.isoformat()
        assert len(ec2["points"]) == 14
        first = ec2["points"][0]
        assert list(first) == ["date", "mean", "lo_80", "hi_80", "lo_95", "hi_95"]
        assert first["date"] == (END + timedelta(days=1)).isoformat()
        assert all(isinstance(first[k], str) for k in first)
        for p in ec2["points"]:
            assert Decimal(p["lo_95"]) <= Decimal(p["lo_80"]) <= Decimal(p["mean"])
            assert Decimal(p["mean"]) <= Decimal(p["hi_80"]) <= Decimal(p["hi_95"])
        # the weekly pattern survives: weekdays are forecast above weekends
        weekday = [
            Decimal(p["mean"]) for p in ec2["points"] if date.fromisoformat(p["date"]).weekday() < 5
        ]
        weekend = [
            Decimal(p["mean"])
            for p in ec2["points"]
            if date.fromisoformat(p["date"]).weekday() >= 5
        ]
        assert min(weekday) > max(weekend)
        s3 = by_service["S3"]
        assert all(Decimal(p["mean"]) == Decimal("2.00") for p in s3["points"])

        filtered = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["forecast", "show", "--group-by", "service", "--filter", "provider=AWS", "-o", "json"],
            env=env,
        )
        assert filtered.exit_code == 0, filtered.output
        assert {f["group"]["service"] for f in json.loads(filtered.output)["forecasts"]} == {
            "EC2",
            "S3",
        }
        table = await asyncio.to_thread(
            CliRunner().invoke, cli, ["forecast", "show", "-g", ""], env=env
        )
        assert table.exit_code == 0 and "USD" in table.output
        projected = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["forecast", "month-end", "-g", "service", "-o", "json"],
            env=env,
        )
        assert projected.exit_code == 0, projected.output
        rows = {r["group"]["service"]: r for r in json.loads(projected.output)["projections"]}
        assert set(rows) == {"EC2", "S3"}
        assert Decimal(rows["S3"]["projected"]) == Decimal(rows["S3"]["actual_to_date"]) + Decimal(
            rows["S3"]["forecast_remainder"]
        )
        bad = await asyncio.to_thread(
            CliRunner().invoke, cli, ["forecast", "show", "-g", "daily"], env=env
        )
        assert bad.exit_code == 2
        for grouping in ("region", "resource", "type"):  # every documented grouping is stored
            by = await asyncio.to_thread(
                CliRunner().invoke, cli, ["forecast", "show", "-g", grouping, "-o", "json"], env=env
            )
            assert by.exit_code == 0 and json.loads(by.output)["forecasts"], (grouping, by.output)
        aws = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["forecast", "show", "-g", "service", "-f", "provider=aws", "-o", "json"],
            env=env,
        )
        assert aws.exit_code == 0 and json.loads(aws.output)["forecasts"], (
            aws.output
        )  # the alias matches AWS
        far = await asyncio.to_thread(
            CliRunner().invoke, cli, ["forecast", "show", "--horizon", "200"], env=env
        )
        assert far.exit_code == 2 and "use --horizon" in far.output and "beyond the" in far.output
    finally:
        await app.stop()


async def test_restated_scope_replaces_older_version_and_unpriced_rows_carry_no_cost(settings):
    await ensure_topics(settings.kafka_bootstrap)
    scope = {"x_BillingScope": "AWS:111:2024-05"}
    v1 = [
        priced(i, START + timedelta(days=i), "EC2", "10.00", x_BillingScopeVersion=1, **scope)
        for i in range(5)
    ]
    v2 = [
        priced(100 + i, START + timedelta(days=i), "EC2", "20.00", x_BillingScopeVersion=2, **scope)
        for i in range(3)
    ]
    unpriced = priced(
        999,
        START,
        "EC2",
        "0",
        x_PriceSource="none",
        ConsumedQuantity="3",
        ConsumedUnit="Hours",
        SkuId="sku-1",
    )
    del unpriced["BilledCost"]
    app = build_app(forecast_settings(settings))
    await app.start()
    try:
        await publish(settings, v1)
        await wait_for_refit(app)
        await publish(settings, v2 + [unpriced])
        await publish(settings, v1)  # a late redelivery of the superseded version
        await wait_for_refit(app, minimum=app.refitter.refits + 1)
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT record_id, cost, scope_version FROM forecast.cost_lines"
            )
            total = await conn.fetchval(
                "SELECT sum(mean) FROM forecast.v_forecasts WHERE dims = '' AND day = $1",
                END + timedelta(days=1),
            )
        finally:
            await conn.close()
        assert sorted((r["record_id"], r["cost"]) for r in rows) == sorted(
            [(f"r-EC2-{100 + i}", Decimal("20.00")) for i in range(3)] + [("r-EC2-999", None)]
        )
        assert total is not None
    finally:
        await app.stop()


async def test_show_before_the_service_ran_is_a_clear_failure(database_url):
    env = {"FINFOCUS_DATABASE_URL": database_url}
    for args in (["forecast", "show", "-o", "json"], ["budget", "list"]):
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 1
        assert "has not started" in result.output
