"""Anomaly life cycle on the real broker and PostgreSQL: restated bills, feedback, monitors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from finfocus.db import reader
from finfocus.signing import SigningKeys, verify
from schemas.anomaly import AnomalyV1
from services.anomaly.app import build_app
from tests.fixtures.remediation.support import publish_signed
from tests.integration.test_anomaly_pipeline import START, consume, history, priced, publish

pytestmark = pytest.mark.integration


def scoped(rows: list[dict], version: int, prefix: str = "") -> list[dict]:
    out = []
    for r in rows:
        month = r["ChargePeriodStart"][:7]
        out.append(
            {
                **r,
                "x_RecordId": prefix + r["x_RecordId"],
                "x_BillingScope": f"AWS:999:{month}",
                "x_BillingScopeVersion": version,
            }
        )
    return out


async def view_rows(settings) -> list[dict]:
    async with reader(settings.database) as conn:
        return [
            dict(r)
            for r in await conn.fetch(
                "SELECT anomaly_id, status, feedback, monitor, record FROM anomaly.v_anomalies"
            )
        ]


async def test_restated_bill_without_the_spike_resolves_the_anomaly(settings):
    rows = history()
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, scoped(rows, 1))
        [first] = await consume(settings.kafka, "anomalies", want=1)
        # version 2 of every month: the spike was a billing error and is gone
        corrected = [r for r in rows if not r["x_RecordId"].startswith("ec2-spike")]
        await publish(settings.kafka, scoped(corrected, 2, prefix="v2-"))
        got = await consume(settings.kafka, "anomalies", want=2)
    finally:
        await app.stop()
    raised = AnomalyV1.model_validate_json(first.value)
    last = AnomalyV1.model_validate_json(got[-1].value)
    assert last.anomaly_id == raised.anomaly_id and last.status == "resolved"
    assert [(r["anomaly_id"], r["status"]) for r in await view_rows(settings)] == [
        (raised.anomaly_id, "resolved")
    ]


async def test_feedback_acknowledges_the_anomaly_and_mutes_its_series(settings):
    rows = history(days=34, spike_day=27)
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, rows[:60])  # days 0..29 (two lines a day, plus the spike)
        [first] = await consume(settings.kafka, "anomalies", want=1)
        raised = AnomalyV1.model_validate_json(first.value)
        # what the service publishes carries its signature (remediation acts on nothing else)
        verify(
            SigningKeys(home=settings.home),
            dict(first.headers),
            "anomalies",
            first.value,
            ["anomaly"],
        )
        forged = json.dumps(
            {
                "anomaly_id": raised.anomaly_id,
                "verdict": "no",
                "note": "forged",
                "given_at": "2026-04-01T00:00:00Z",
            }
        ).encode()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
        await producer.start()
        await producer.send_and_wait("anomaly-feedback", forged)  # unsigned: dead-lettered
        await producer.stop()
        [letter] = await consume(settings.kafka, "anomaly-feedback.dlq", want=1)
        assert "unsigned message" in json.loads(letter.value)["error"]
        await publish_signed(
            settings,
            "anomaly-feedback",
            [
                json.dumps(
                    {
                        "anomaly_id": raised.anomaly_id,
                        "verdict": "planned",
                        "note": "load test",
                        "given_at": "2026-04-01T00:00:00Z",
                    }
                ).encode()
            ],
            issuer="cli",
        )
        got = await consume(settings.kafka, "anomalies", want=2)
        # another spike a few days later, inside the muted period
        day = START + timedelta(days=32)
        await publish(
            settings.kafka, [*rows[60:], priced(day, "600.00", rid="again", resource="i-3")]
        )
        await asyncio.sleep(2)
        after = await consume(settings.kafka, "anomalies", want=3, timeout=3)
    finally:
        await app.stop()
    ack = AnomalyV1.model_validate_json(got[-1].value)
    assert (ack.anomaly_id, ack.status) == (raised.anomaly_id, "acknowledged")
    assert len(after) == 2, [json.loads(r.value)["window_start"] for r in after]
    [row] = await view_rows(settings)
    assert (row["status"], row["feedback"]) == ("acknowledged", "planned")
    from typer.testing import CliRunner

    from finfocus.cli import app as cli

    shown = await asyncio.to_thread(  # the note is shown, and a unique id prefix is accepted
        CliRunner().invoke,
        cli,
        ["anomalies", "show", raised.anomaly_id[:14]],
        env={"FINFOCUS_DATABASE_URL": settings.database, "COLUMNS": "100"},
    )
    assert shown.exit_code == 0 and "load test" in shown.output and "planned" in shown.output, (
        shown.output
    )
    conn = await asyncpg.connect(settings.database)
    try:
        audit = await conn.fetch("SELECT verdict, actor FROM anomaly.feedback_audit")
    finally:
        await conn.close()
    assert [tuple(r) for r in audit] == [("planned", "cli")]  # the forged "no" changed nothing


async def test_custom_monitor_from_yaml_watches_its_filtered_lines(settings):
    monitors = settings.home / "anomaly" / "monitors.yaml"
    monitors.parent.mkdir(parents=True, exist_ok=True)
    monitors.write_text(
        "monitors:\n"
        "  - name: data-team\n"
        '    filters: {"tag:team": data}\n'
        "  - name: regions\n"
        "    dimensions: [RegionId]\n"
        "    top: 1\n"
    )
    rows = []
    for d in range(30):
        day = START + timedelta(days=d)
        rows.append(priced(day, "50.00", rid=f"data-{d}", resource="etl", Tags={"team": "data"}))
        rows.append(
            priced(
                day,
                "10.00",
                rid=f"web-{d}",
                resource="web",
                region="eu-west-1",
                Tags={"team": "web"},
            )
        )
    rows.append(
        priced(
            START + timedelta(days=28),
            "300.00",
            rid="etl-big",
            resource="etl-2",
            Tags={"team": "data"},
        )
    )
    rows.append(
        priced(
            START + timedelta(days=28),
            "300.00",
            rid="web-big",
            resource="web-2",
            region="eu-west-1",
            Tags={"team": "web"},
        )
    )
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, rows)
        got = await consume(settings.kafka, "anomalies", want=2)
    finally:
        await app.stop()
    found = {
        (a.monitor, tuple(sorted(a.dimension.items())))
        for a in (AnomalyV1.model_validate_json(r.value) for r in got)
    }
    # the custom monitor sees the data team's spike; the regions monitor tracks only the
    # costliest region (us-east-1), so the eu-west-1 spike raises nothing there
    assert found == {
        ("data-team", (("tag:team", "data"),)),
        ("regions", (("RegionId", "us-east-1"),)),
    }


async def test_partial_day_far_out_warns_intraday_and_the_complete_day_updates_the_same_anomaly(
    settings,
):
    rows = history(days=30, spike_day=99)  # a quiet month
    day = START + timedelta(days=30)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    half = [
        {
            **priced(day, "250.00", rid=f"ec2-hour-{h}", resource="i-9"),
            "ChargePeriodStart": (noon - timedelta(hours=12 - h)).isoformat(),
            "ChargePeriodEnd": (noon - timedelta(hours=11 - h)).isoformat(),
        }
        for h in range(12)
    ]  # by noon, EC2 already ran 3,000 USD against about 100 a day
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, rows + half)
        [early] = await consume(settings.kafka, "anomalies", want=1)
        warning = AnomalyV1.model_validate_json(early.value)
        early_kind = await kind_of(settings, warning.anomaly_id)
        evening = [
            {
                **priced(day, "250.00", rid=f"ec2-pm-{h}", resource="i-9"),
                "ChargePeriodStart": (noon + timedelta(hours=h)).isoformat(),
                "ChargePeriodEnd": (noon + timedelta(hours=h + 1)).isoformat(),
            }
            for h in range(12)
        ]
        await publish(settings.kafka, evening)
        got = await consume(settings.kafka, "anomalies", want=2)
    finally:
        await app.stop()
    assert warning.dimension["ServiceName"] == "AmazonEC2"
    assert warning.window_start.date() == day and warning.actual_cost == Decimal("3000.00")
    assert early_kind == "intraday" and warning.status == "ongoing"
    final = AnomalyV1.model_validate_json(got[-1].value)
    assert final.anomaly_id == warning.anomaly_id  # the complete day updates the warning
    assert final.actual_cost == Decimal("6000.00") and final.window_end.date() == day + timedelta(
        days=1
    )
    assert await kind_of(settings, warning.anomaly_id) == "spike"


async def kind_of(settings, anomaly_id: str) -> str:
    async with reader(settings.database) as conn:
        return await conn.fetchval(
            "SELECT kind FROM anomaly.v_anomalies WHERE anomaly_id = $1", anomaly_id
        )
