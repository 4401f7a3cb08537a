"""The demo's multi-cloud sample through the anomaly service: the EC2 spike of the last days
is found, with the resized instance as its main root cause, and no normal day alerts."""

from __future__ import annotations

import json
from datetime import date

import pytest

from finfocus.db import reader
from finfocus.sample_data import generate
from schemas.anomaly import AnomalyV1
from services.anomaly.app import build_app
from tests.integration.test_anomaly_pipeline import consume, publish

pytestmark = pytest.mark.integration


def as_priced(row: dict[str, str]) -> dict:
    out = {k: v for k, v in row.items() if v not in ("", None)}
    if "Tags" in out:
        out["Tags"] = json.loads(out["Tags"])
    out["x_PriceSource"] = "billed"
    return out


async def test_demo_sample_raises_exactly_the_ec2_spike(settings):
    rows, summary = generate(end=date(2026, 3, 1), days=60)
    app = build_app(settings)
    await app.start()
    try:
        await publish(settings.kafka, [as_priced(r) for r in rows])
        got = await consume(settings.kafka, "anomalies", want=1)
    finally:
        await app.stop()
    anomalies = {a.anomaly_id: a for a in (AnomalyV1.model_validate_json(r.value) for r in got)}
    assert len(anomalies) == 1, [(a.dimension, a.window_start) for a in anomalies.values()]
    [a] = anomalies.values()
    assert a.dimension["ServiceName"] == "Amazon Elastic Compute Cloud"
    assert a.window_start.date() == summary.spike_days[0]
    assert a.window_end.date() == date(2026, 3, 1) and a.status == "ongoing"
    assert a.root_causes[0].dimension["ResourceId"] == summary.spike_resource_id
    assert sum(c.contribution for c in a.root_causes) == a.impact
    async with reader(settings.database) as conn:
        assert await conn.fetchval("SELECT count(*) FROM anomaly.v_anomalies") == 1
