"""`finfocus anomalies show PREFIX` on a real database: the anomaly from `anomaly.v_anomalies`,
its dimension's daily cost from `pricing.v_cost_lines` (through the read-only role) drawn as a
sparkline; an ambiguous prefix exits 2 with the candidates."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from finfocus.cli import app as cli
from finfocus.db import migrate_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

START = date(2026, 11, 7)
ANOMALY = "anm-5e1f0c2d3b4a59687766554433221100"
OTHER = "anm-5e1f99993b4a59687766554433221100"


async def _prepare(url: str) -> None:
    from services.anomaly.app import MIGRATIONS_DIR as ANOMALY_MIGRATIONS
    from services.pricing.app import MIGRATIONS_DIR as PRICING_MIGRATIONS

    await migrate_url(url, "pricing", PRICING_MIGRATIONS)
    await migrate_url(url, "anomaly", ANOMALY_MIGRATIONS)
    conn = await asyncpg.connect(url)
    try:
        lines = []
        for d in range(24):  # three quiet weeks, then three days at 40x
            day = START + timedelta(days=d)
            cost = "900.00" if d >= 21 else "22.50"
            lines.append(
                (f"r{d}", "210987654321", "Amazon Elastic Compute Cloud", "Usage-Based", day, cost)
            )
            lines.append(
                (
                    f"f{d}",
                    "210987654321",
                    "Amazon Elastic Compute Cloud",
                    "Recurring",
                    day,
                    "500.00",
                )
            )
            lines.append(
                (
                    f"o{d}",
                    "999999999999",
                    "Amazon Elastic Compute Cloud",
                    "Usage-Based",
                    day,
                    "700.00",
                )
            )
        for rid, account, service, freq, day, cost in lines:
            await conn.execute(
                "INSERT INTO pricing.cost_lines (record_id, provider, billing_account_id, sub_account_id, service_name,"
                " charge_category, charge_frequency, charge_period_start, charge_period_end, billing_currency,"
                " billed_cost, tags, price_source, record, priced_at) VALUES ($1, 'AWS', $2, $2, $3, 'Usage', $4,"
                " $5::date + time '06:00', $5::date + time '07:00', 'USD', $6::text::numeric, '{}', 'billed', '{}',"
                " now())",
                rid,
                account,
                service,
                freq,
                day,
                cost,
            )
        for anomaly_id in (ANOMALY, OTHER):
            dimension = {
                "ProviderName": "AWS",
                "SubAccountId": "210987654321",
                "ServiceName": "Amazon Elastic Compute Cloud",
            }
            body = {
                "anomaly_id": anomaly_id,
                "detected_at": "2026-12-01T06:00:00Z",
                "window_start": "2026-11-28T00:00:00Z",
                "window_end": "2026-12-01T00:00:00Z",
                "dimension": dimension,
                "expected_cost": "67.50",
                "actual_cost": "2700.00",
                "impact": "2632.50",
                "impact_pct": "3900.0",
                "currency": "USD",
                "severity": "critical",
                "score": 30.5,
                "detector": "robust-seasonal",
                "root_causes": [],
                "status": "open",
                "monitor": "services",
            }
            await conn.execute(
                "INSERT INTO anomaly.anomalies (anomaly_id, monitor, series_key, dimension, currency, window_start,"
                " window_end, expected_cost, actual_cost, impact, severity, status, detector, kind,"
                " first_detected_at, detected_at, body) VALUES ($1, 'services', 'k', $2::text::jsonb, 'USD',"
                " '2026-11-28T00:00:00Z', '2026-12-01T00:00:00Z', 67.5, 2700, 2632.5, 'critical', 'open',"
                " 'robust-seasonal', 'spike', now(), now(), $3::text::jsonb)",
                anomaly_id,
                json.dumps(dimension),
                json.dumps(body),
            )
    finally:
        await conn.close()


async def test_anomalies_show_draws_the_series_from_the_cost_lines(database_url):
    await _prepare(database_url)
    env = {"FINFOCUS_DATABASE_URL": database_url, "COLUMNS": "100"}
    shown = await asyncio.to_thread(
        CliRunner().invoke, cli, ["anomalies", "show", ANOMALY[:10]], env=env
    )
    assert shown.exit_code == 0, shown.output
    assert f"Anomaly {ANOMALY}" in shown.output
    line = next(x for x in shown.output.splitlines() if x.startswith("series"))
    # the recurring fee and the other account are not in it; days after the window are not billed yet
    assert "▁" * 21 + "███" in line, line
    assert "2026-11-07 to 2026-11-30, daily 22.50 to 900.00" in " ".join(shown.output.split())
    ambiguous = await asyncio.to_thread(
        CliRunner().invoke, cli, ["anomalies", "show", "anm-5e1f"], env=env
    )
    assert ambiguous.exit_code == 2 and ANOMALY in ambiguous.output and OTHER in ambiguous.output
    unknown = await asyncio.to_thread(
        CliRunner().invoke, cli, ["anomalies", "show", "anm-0000"], env=env
    )
    assert unknown.exit_code == 1 and "no anomaly anm-0000" in unknown.output
