"""Budgets end to end: `finfocus budget set`, evaluation after refit, one anomaly per threshold."""

from __future__ import annotations

import asyncio
import calendar
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from finfocus.broker import ensure_topics
from finfocus.cli import app as cli
from schemas.anomaly import AnomalyV1
from schemas.topics import Topics
from services.forecast.app import build_app

from .test_forecast_service import END, START, forecast_settings, priced, publish, wait_for_refit

pytestmark = pytest.mark.integration


async def anomalies(bootstrap: str, expect: int, timeout: float = 20.0) -> list[AnomalyV1]:
    consumer = AIOKafkaConsumer(
        Topics.ANOMALIES, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[AnomalyV1] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(found) < expect:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                found.extend(AnomalyV1.model_validate_json(r.value) for r in records)
        await asyncio.sleep(1.0)  # anything extra would arrive now
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            found.extend(AnomalyV1.model_validate_json(r.value) for r in records)
    finally:
        await consumer.stop()
    return found


async def test_budget_breach_publishes_one_anomaly_per_threshold_and_period(settings):
    await ensure_topics(settings.kafka_bootstrap)
    records = [priced(i, START + timedelta(days=i), "EC2", "10.00") for i in range(30)]
    records += [priced(i, START + timedelta(days=i), "S3", "1.00") for i in range(30)]
    await publish(settings, records)
    app = build_app(forecast_settings(settings))
    await app.start()
    env = {
        "FINFOCUS_DATABASE_URL": settings.database_url,
        "FINFOCUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FINFOCUS_HOME": str(settings.home),
    }  # the CLI signs with the key files of this home
    invoke = lambda *args: asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)  # noqa: E731
    try:
        await wait_for_refit(app)
        month_to_date = Decimal(10 * END.day)
        amount = (month_to_date / Decimal("0.9")).quantize(Decimal("0.01"))  # actual at ~90 %
        result = await invoke(
            "budget", "set", "ec2-monthly", "--amount", str(amount), "--filter", "service=EC2"
        )
        assert result.exit_code == 0, result.output
        await wait_for_refit(app, minimum=2)

        days_in_month = calendar.monthrange(END.year, END.month)[1]
        expected = {("actual", "80")}
        if Decimal(10 * days_in_month) >= amount:
            expected.add(("forecast", "100"))
        found = await anomalies(settings.kafka_bootstrap, len(expected))
        assert {(a.monitor.split(":")[2], a.monitor.split(":")[3]) for a in found} == expected
        assert len(found) == len(expected)
        for a in found:
            assert a.detector == "budget" and a.currency == "USD"
            assert a.dimension == {"x_Budget": "ec2-monthly", "ServiceName": "EC2"}
            assert a.expected_cost == amount
            assert a.window_start.date() == date(END.year, END.month, 1)

        # another refit with unchanged spend raises nothing new
        await app.refitter.refit("test")
        assert len(
            await anomalies(settings.kafka_bootstrap, len(expected) + 1, timeout=2.0)
        ) == len(expected)

        listed = await invoke("budget", "list", "--output", "json")
        assert listed.exit_code == 0, listed.output
        [budget] = json.loads(listed.output)["budgets"]
        assert budget["name"] == "ec2-monthly" and budget["scope"] == {"service": "EC2"}
        assert Decimal(budget["actual_to_date"]) == month_to_date
        assert Decimal(budget["projected"]) == Decimal(10 * days_in_month)
        assert budget["alerts_this_period"] == len(expected)

        bad = await invoke("budget", "set", "x", "--amount", "-5")
        assert bad.exit_code == 2
        deleted = await invoke("budget", "delete", "ec2-monthly")
        assert deleted.exit_code == 0, deleted.output
        listed = await invoke("budget", "list", "-o", "json")
        assert json.loads(listed.output) == {"budgets": []}
    finally:
        await app.stop()


async def test_forged_budget_commands_are_dead_lettered_and_change_nothing(settings):
    """Unsigned, signed by an untrusted issuer, or signed with a wrong key: none is applied;
    the CLI's own command is, with `cli` audited as its actor."""
    from datetime import UTC, datetime

    import asyncpg
    from aiokafka import AIOKafkaProducer

    from finfocus.signing import SigningKeys, ensure_key_files, sign
    from schemas.budget import BUDGET_COMMANDS, BudgetCommandV1
    from tests.fixtures.remediation.support import eventually, read_topic

    await ensure_topics(settings.kafka_bootstrap, topics=[BUDGET_COMMANDS])
    forged = (
        BudgetCommandV1(
            action="set",
            name="forged",
            amount=Decimal("1"),
            currency="USD",
            issued_at=datetime.now(UTC),
        )
        .model_dump_json()
        .encode()
    )
    ensure_key_files(settings.home, ["cli", "ingest"])
    keys = SigningKeys(home=settings.home)
    _, good_sig = sign(keys, "cli", BUDGET_COMMANDS, forged)
    tampered = good_sig[:-4] + (b"0000" if not good_sig.endswith(b"0000") else b"1111")
    app = build_app(forecast_settings(settings))
    await app.start()
    try:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=False
        )
        await producer.start()
        try:
            for headers in (
                [],
                [sign(keys, "ingest", BUDGET_COMMANDS, forged)],
                [("finfocus-signature", tampered)],
            ):
                await producer.send_and_wait(BUDGET_COMMANDS, forged, headers=headers)
        finally:
            await producer.stop()
        letters = await read_topic(settings.kafka_bootstrap, Topics.dlq(BUDGET_COMMANDS), want=3)
        errors = sorted(json.loads(r.value)["error"] for r in letters)
        assert len(errors) == 3
        assert any("unsigned" in e for e in errors) and any("'ingest' may not" in e for e in errors)
        assert any("bad signature" in e for e in errors)
        env = {
            "FINFOCUS_DATABASE_URL": settings.database_url,
            "FINFOCUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "FINFOCUS_HOME": str(settings.home),
        }
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["budget", "set", "real", "--amount", "10"], env=env
        )
        assert result.exit_code == 0, result.output
        conn = await asyncpg.connect(settings.database_url)
        try:
            audit = await eventually(
                lambda: conn.fetch("SELECT name, actor, changed FROM forecast.v_budget_audit")
            )
            assert [tuple(r) for r in audit] == [("real", "cli", True)]
            assert [r["name"] for r in await conn.fetch("SELECT name FROM forecast.budgets")] == [
                "real"
            ]
        finally:
            await conn.close()
    finally:
        await app.stop()
