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


async def test_remediation_samples_its_last_analysis(database_url):
    """A stalled analysis leader shows as a last-analysis time that stops moving."""
    await migrate_url(database_url, "remediation", ROOT / "remediation" / "migrations")
    conn = await connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO remediation.analysis_runs (started_at, finished_at, instance, "
            "recommendations, published, savings) VALUES "
            "('2026-12-01T10:00:00Z', '2026-12-01T10:00:02.5Z', 'old', 1, 1, 0), "
            "('2026-12-01T10:15:00Z', '2026-12-01T10:15:04Z', 'leader', 2, 2, 1)"
        )
        rows = await conn.fetch((ROOT / "remediation" / "metrics.sql").read_text())
    finally:
        await conn.close()
    got = {name: value for name, _, value in rows if "analysis" in name}
    assert got == {
        "finfocus_remediation_analysis_duration_seconds": 4.0,
        "finfocus_remediation_last_analysis_timestamp_seconds": 1796120104.0,
    }
