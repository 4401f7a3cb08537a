"""Every service's `metrics.sql` runs against its real schema (all migrations applied) and
names only series the runtime exposes, with bounded labels and numeric values."""

from __future__ import annotations

from pathlib import Path

import pytest

from finfocus import metrics
from finfocus.db import connect, migrate_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2] / "services"
SAMPLED = sorted(p.parent.name for p in ROOT.glob("*/metrics.sql"))


def test_every_stream_service_samples_its_tables():
    assert set(SAMPLED) >= {"ingest", "pricing", "anomaly", "forecast", "remediation"}


@pytest.mark.parametrize("service", SAMPLED)
async def test_metrics_sql_runs_on_the_migrated_schema_and_names_known_series(
    service, database_url
):
    await migrate_url(database_url, service, ROOT / service / "migrations")
    conn = await connect(database_url)
    try:
        rows = await conn.fetch((ROOT / service / "metrics.sql").read_text())
    finally:
        await conn.close()
    for name, labels, value in rows:
        assert name in metrics.SAMPLED, name
        assert isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())
        assert isinstance(value, float)
    # an empty schema still reports its counts (zero), so dashboards show 0 instead of nothing
    if service == "ingest":
        assert {r[1].get("outcome") for r in rows if r[0] == "finfocus_ingest_rows"} == {
            "read",
            "published",
            "rejected",
        }
    if service == "anomaly":
        assert any(r[0] == "finfocus_outbox_backlog" and r[2] == 0.0 for r in rows)
