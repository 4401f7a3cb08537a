"""Importing FOCUS files on the real broker and PostgreSQL: jobs, publishing, no-op re-imports,
dead letters, restated periods and `finfocus ingest --wait` against the real pricing service."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
import polars as pl
import pytest
from aiokafka import AIOKafkaConsumer

from finfocus.broker import RecordPublisher, ensure_topics
from finfocus.db import create_pool, migrate_url
from finfocus.signing import SigningKeys, ensure_key_files
from finfocus.telemetry import make_tracer_provider
from schemas.ingest import BillingRecordV1
from schemas.topics import Topics
from services.ingest.importer import Importer
from services.ingest.store import MIGRATIONS_DIR, IngestStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SAMPLE = "focus-samples/FOCUS-1.0/focus_sample.csv"
ROOT = Path(__file__).resolve().parents[2]


async def read_topic(
    bootstrap: str, topic: str, at_least: int, timeout: float = 20.0, settle: float = 1.0
):
    """Everything on `topic` (waits for `at_least` records, then `settle` s for stragglers)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_until = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            new = [r for records in batch.values() for r in records]
            got += new
            if len(got) >= at_least:
                quiet_until = quiet_until or loop.time() + settle
                if loop.time() > quiet_until:
                    break
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def importer(settings):
    await migrate_url(settings.database, "ingest", MIGRATIONS_DIR)
    await ensure_topics(settings.kafka)
    pool = await create_pool(settings.database)
    publisher = RecordPublisher(settings.kafka, acks="all")
    await publisher.start()
    provider = make_tracer_provider("finfocus-ingest-test")
    ensure_key_files(settings.home, ["ingest"])
    keys = SigningKeys(home=settings.home)
    yield Importer(IngestStore(pool), publisher, provider.get_tracer("test"), keys=keys, lease_s=5)
    await publisher.stop()
    await pool.close()


async def test_importing_the_focus_sample_publishes_every_row_and_records_the_job(
    settings, shared_data, importer
):
    result = await importer.import_files([shared_data / SAMPLE], "focus")
    assert result.status == "completed"
    assert (result.tally.rows_read, result.tally.rows_published, result.tally.rows_rejected) == (
        1000,
        1000,
        0,
    )

    records = await read_topic(settings.kafka, Topics.RAW_BILLING, 1000)
    assert len(records) == 1000
    models = [BillingRecordV1.model_validate_json(r.value) for r in records]
    assert len({m.x_RecordId for m in models}) == 1000
    assert all(
        m.x_ImportJobId == result.job_id and m.x_BillingScopeVersion == result.version
        for m in models
    )
    assert all(r.key == m.partition_key() for r, m in zip(records, models))
    assert all(dict(r.headers).get("traceparent") for r in records)
    assert sum(m.BilledCost for m in models) == result.tally.totals["USD"]

    conn = await asyncpg.connect(settings.database)
    try:
        job = await conn.fetchrow(
            "SELECT * FROM ingest.import_jobs WHERE job_id = $1", result.job_id
        )
    finally:
        await conn.close()
    assert job["status"] == "completed" and job["format"] == "focus"
    assert (job["rows_read"], job["rows_published"], job["rows_rejected"]) == (1000, 1000, 0)
    assert orjson.loads(job["totals"]) if isinstance(job["totals"], str) else job["totals"]
    assert set(job["billing_periods"]) == {"2024-09", "2024-10"}
    assert "AWS:1234567890123:2024-09" in job["billing_scopes"]

    again = await importer.import_files([shared_data / SAMPLE], "auto")
    assert again.status == "duplicate" and again.duplicate_of == result.job_id
    assert len(await read_topic(settings.kafka, Topics.RAW_BILLING, 1000)) == 1000  # nothing new


async def test_rejected_rows_get_a_reason_and_a_dead_letter(settings, tmp_path, importer):
    good = {
        "ProviderName": "AWS",
        "BillingAccountId": "0012",
        "ServiceName": "EC2",
        "ChargeCategory": "Usage",
        "ChargePeriodStart": "2024-09-01 00:00:00",
        "ChargePeriodEnd": "2024-09-01 01:00:00",
        "BillingCurrency": "USD",
        "BilledCost": "1.25",
    }
    path = tmp_path / "bill.csv"
    pl.DataFrame([good, {**good, "BillingCurrency": "XYZ"}]).write_csv(path)
    result = await importer.import_files([path])
    assert (result.tally.rows_published, result.tally.rows_rejected) == (1, 1)
    letters = await read_topic(settings.kafka, Topics.dlq(Topics.RAW_BILLING), 1)
    assert len(letters) == 1
    letter = orjson.loads(letters[0].value)
    assert "row 2: unknown currency 'XYZ'" in letter["error"] and letter["service"] == "ingest"
    assert orjson.loads(letter["original"])["BillingCurrency"] == "XYZ"
    conn = await asyncpg.connect(settings.database)
    try:
        reasons = await conn.fetch(
            "SELECT row_number, reason FROM ingest.rejected_rows WHERE job_id=$1", result.job_id
        )
    finally:
        await conn.close()
    assert [(r["row_number"], r["reason"][:20]) for r in reasons] == [(2, "unknown currency 'XY")]


async def test_replay_publishes_a_job_again(settings, tmp_path, importer):
    path = tmp_path / "bill.csv"
    pl.DataFrame(
        [
            {
                "ProviderName": "AWS",
                "BillingAccountId": "1",
                "ServiceName": "S3",
                "ChargeCategory": "Usage",
                "ChargePeriodStart": f"2024-09-0{i}T00:00:00Z",
                "ChargePeriodEnd": f"2024-09-0{i}T01:00:00Z",
                "BillingCurrency": "EUR",
                "BilledCost": f"0.{i}",
            }
            for i in range(1, 6)
        ]
    ).write_csv(path)
    result = await importer.import_files([path])
    assert await importer.replay(job_id=result.job_id) == 5
    assert await importer.replay(period="2024-09") == 5
    records = await read_topic(settings.kafka, Topics.RAW_BILLING, 15)
    assert len(records) == 15 and len({r.value for r in records}) == 5


def cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_KAFKA_BOOTSTRAP": settings.kafka,
        "FINFOCUS_DATABASE_URL": settings.database,
    }


async def finfocus(settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "finfocus.cli",
        *args,
        env=cli_env(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def pricing(settings):
    from services.pricing.app import build_app

    app = build_app(settings)
    await app.start()
    yield app
    await app.stop()


async def stored_totals(database_url: str, scope: str | None = None) -> dict[str, Decimal]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT billing_currency, sum(billed_cost) AS total, count(*) AS n FROM pricing.v_cost_lines "
            "WHERE $1::text IS NULL OR billing_scope = $1 GROUP BY 1",
            scope,
        )
    finally:
        await conn.close()
    return {r["billing_currency"]: (r["total"], r["n"]) for r in rows}


async def test_cli_import_with_wait_reconciles_the_sample_to_the_cent(
    settings, shared_data, pricing
):
    code, out, err = await finfocus(
        settings,
        "ingest",
        str(shared_data / SAMPLE),
        "--format",
        "focus",
        "--wait",
        "--wait-timeout",
        "60",
        "--output",
        "json",
    )
    assert code == 0, err
    summary = orjson.loads(out)
    assert summary["rows_published"] == 1000 and summary["stored_rows"] == 1000
    assert summary["reconciliation"]["reconciled"] is True
    total, count = (await stored_totals(settings.database))["USD"]
    assert count == 1000 and total == Decimal(summary["totals"]["USD"])

    code, out, err = await finfocus(
        settings, "ingest", str(shared_data / SAMPLE), "--output", "json"
    )
    assert code == 0, err
    assert orjson.loads(out)["duplicate_of"] == summary["job_id"]
    assert (await stored_totals(settings.database))["USD"] == (total, 1000)


def month_file(path: Path, costs: list[str]) -> Path:
    pl.DataFrame(
        [
            {
                "ProviderName": "AWS",
                "BillingAccountId": "000111",
                "SubAccountId": "000222",
                "ServiceName": "EC2",
                "ChargeCategory": "Usage",
                "BillingPeriodStart": "2024-10-01 00:00:00",
                "ChargePeriodStart": f"2024-10-{d + 1:02d} 00:00:00",
                "ChargePeriodEnd": f"2024-10-{d + 1:02d} 01:00:00",
                "BillingCurrency": "USD",
                "BilledCost": cost,
            }
            for d, cost in enumerate(costs)
        ]
    ).write_csv(path)
    return path


async def test_restated_month_replaces_previous_rows(settings, tmp_path, pricing):
    first = month_file(tmp_path / "cur-v1.csv", ["1.00", "2.00", "3.00"])
    code, out, err = await finfocus(
        settings, "ingest", str(first), "--wait", "--wait-timeout", "60", "--output", "json"
    )
    assert code == 0, err
    scope = "AWS:000111:2024-10"
    assert (await stored_totals(settings.database, scope))["USD"] == (Decimal("6.00"), 3)

    restated = month_file(
        tmp_path / "cur-v2.csv", ["1.00", "2.50"]
    )  # one row restated, one dropped
    code, out, err = await finfocus(
        settings, "ingest", str(restated), "--wait", "--wait-timeout", "60", "--output", "json"
    )
    assert code == 0, err
    summary = orjson.loads(out)
    assert summary["reconciliation"]["reconciled"] is True
    assert (await stored_totals(settings.database, scope))["USD"] == (Decimal("3.50"), 2)

    code, out, err = await finfocus(settings, "ingest", "jobs", "--output", "json")
    assert code == 0, err
    jobs = orjson.loads(out)["jobs"]
    assert [j["job_id"] for j in jobs][0] == summary["job_id"] and len(jobs) == 2
    assert jobs[0]["version"] > jobs[1]["version"] and jobs[0]["totals"] == {"USD": "3.5"}


async def test_cli_exits_non_zero_when_nothing_imports_and_with_strict(settings, tmp_path):
    bad = tmp_path / "bad.csv"
    pl.DataFrame(
        [
            {
                "ProviderName": "AWS",
                "BillingAccountId": "1",
                "ServiceName": "S3",
                "ChargeCategory": "Usage",
                "ChargePeriodStart": "x",
                "ChargePeriodEnd": "y",
                "BillingCurrency": "USD",
                "BilledCost": "1",
            }
        ]
    ).write_csv(bad)
    code, out, err = await finfocus(settings, "ingest", str(bad), "--output", "json")
    assert code == 1 and orjson.loads(out)["rows_rejected"] == 1
    mixed = month_file(tmp_path / "mixed.csv", ["1.00", "abc"])
    code, out, _ = await finfocus(settings, "ingest", str(mixed), "--strict", "--output", "json")
    assert code == 1 and orjson.loads(out)["rows_published"] == 1
    unknown = tmp_path / "other.csv"
    unknown.write_text("a,b\n1,2\n")
    code, _, err = await finfocus(settings, "ingest", str(unknown))
    assert code == 1 and "matches no supported format" in err
