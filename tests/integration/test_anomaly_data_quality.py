"""A billing delay through the anomaly service on the real broker and PostgreSQL: kept as a
data-quality event of its own kind, never published as a cost anomaly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from finfocus.db import reader
from schemas.anomaly import AnomalyV1
from services.anomaly.app import build_app
from tests.integration.test_anomaly_pipeline import START, consume, history, priced, publish

pytestmark = pytest.mark.integration


async def test_billing_delay_is_a_data_quality_event_not_an_anomaly(settings):
    rows = [r for r in history(days=30, spike_day=28) if r["x_RecordId"] != "ec2-22"]
    day = START + timedelta(days=22)
    rows.append(priced(day, "0.00", rid="ec2-22"))  # the day's charges are late ...
    rows.append(
        priced(day + timedelta(days=1), "102.00", rid="ec2-22-late")
    )  # ... and arrive the next day
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, rows)
        got = await consume(settings.kafka, "anomalies", want=1)
    finally:
        await app.stop()
    published = {AnomalyV1.model_validate_json(r.value).window_start.date() for r in got}
    assert published == {START + timedelta(days=28)}  # the real spike only
    async with reader(settings.database) as conn:
        kinds = {
            (r["kind"], r["window_start"].date())
            for r in await conn.fetch("SELECT kind, window_start FROM anomaly.v_anomalies")
        }
        quality = {
            (r["kind"], r["window_start"].date())
            for r in await conn.fetch(
                "SELECT kind, window_start FROM anomaly.v_data_quality_events"
            )
        }
    # the delay is a data-quality event of its own, not a cost anomaly people read
    assert ("billing-delay", day) in quality
    assert not any(kind == "billing-delay" for kind, _ in kinds)
    assert ("spike", START + timedelta(days=28)) in kinds
