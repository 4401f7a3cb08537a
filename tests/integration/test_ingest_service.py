"""The ingest service's unattended sources on the real broker and PostgreSQL: HTTP intake,
a watched directory and a watched S3 bucket (a moto server on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import httpx
import orjson
import polars as pl
import pytest

from finfocus.embedded.ports import free_port, wait_for_port
from schemas.topics import Topics
from services.ingest.app import build_app
from services.ingest.config import IngestSettings
from services.ingest.watch import DirectoryWatcher, S3Watcher
from tests.integration.test_ingest_focus import importer, read_topic  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def record(i: int, **extra) -> dict:
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "000123",
        "ServiceName": "EC2",
        "ChargeCategory": "Usage",
        "ChargePeriodStart": f"2024-09-0{i}T00:00:00Z",
        "ChargePeriodEnd": f"2024-09-0{i}T01:00:00Z",
        "BillingCurrency": "USD",
        "BilledCost": f"{i}.10",
        **extra,
    }


async def test_http_intake_accepts_rows_reports_row_errors_and_guards_the_door(
    settings, monkeypatch
):
    monkeypatch.setenv("FINFOCUS_SECRET_INGEST_TOKEN", "s3cret")
    port = free_port()
    app = build_app(
        IngestSettings(**settings.model_dump(), ingest_http_port=port, ingest_http_max_bytes=4096)
    )
    await app.start()
    try:
        url = f"http://127.0.0.1:{port}/v1/billing-records"
        auth = {"Authorization": "Bearer s3cret"}
        async with httpx.AsyncClient() as client:
            hijack = {"x_BillingScope": "AWS:999999:2024-09", "x_BillingScopeVersion": 10**15}
            response = await client.post(
                url, content=orjson.dumps([record(1, **hijack)]), headers=auth
            )
            assert response.status_code == 400 and "only ingest" in response.text  # ingest's to set
            body = [record(1), record(2, BillingCurrency="XYZ"), record(3)]
            response = await client.post(url, content=orjson.dumps(body), headers=auth)
            assert response.status_code == 200, response.text
            result = response.json()
            assert (result["accepted"], result["rejected"]) == (2, 1)
            assert result["errors"][0]["index"] == 1 and "currency" in result["errors"][0]["error"]

            ndjson = b"\n".join(orjson.dumps(record(4)) for _ in range(1)) + b"\nnot json\n"
            response = await client.post(url, content=ndjson, headers=auth)
            assert response.status_code == 200 and response.json()["accepted"] == 1

            assert (
                await client.post(url, content=b"[]", headers={"Authorization": "Bearer wrong"})
            ).status_code == 401
            assert (await client.post(url, content=b"[]")).status_code == 401
            big = orjson.dumps([record(1)] * 50)
            assert (await client.post(url, content=big, headers=auth)).status_code == 413
            assert (await client.post(url, content=b'[{"a": 1}]', headers=auth)).status_code == 422
    finally:
        await app.stop()
    published = await read_topic(settings.kafka, Topics.RAW_BILLING, 3)
    rows = [orjson.loads(r.value) for r in published]
    assert sorted(r["BilledCost"] for r in rows) == ["1.10", "3.10", "4.10"]
    assert all(r["x_ImportJobId"] == result["job_id"] for r in rows if r["BilledCost"] != "4.10")
    assert not any("x_BillingScope" in r or "x_BillingScopeVersion" in r for r in rows)
    letters = await read_topic(settings.kafka, Topics.dlq(Topics.RAW_BILLING), 3)
    assert len(letters) >= 3  # the XYZ row, the non-JSON line, the object without columns
    conn = await asyncpg.connect(settings.database)
    try:
        job = await conn.fetchrow(
            "SELECT source, rows_published, totals FROM ingest.import_jobs WHERE job_id=$1",
            result["job_id"],
        )
    finally:
        await conn.close()
    assert job["source"] == "http" and job["rows_published"] == 2


def month(path, costs):
    pl.DataFrame(
        [
            record(i + 1, BilledCost=c, BillingPeriodStart="2024-09-01T00:00:00Z")
            for i, c in enumerate(costs)
        ]
    ).write_csv(path)


async def test_watched_directory_imports_new_and_restated_files_once(settings, tmp_path, importer):  # noqa: F811
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watcher = DirectoryWatcher(importer, inbox)
    month(inbox / "bill.csv", ["1.00", "2.00"])
    assert await watcher.scan_once() == []  # seen once: maybe still being written
    first = await watcher.scan_once()
    assert [r.status for r in first] == ["completed"] and first[0].tally.rows_published == 2
    assert await watcher.scan_once() == []
    month(inbox / "bill.csv", ["1.00", "2.50", "3.00"])  # the provider restated the month
    os.utime(inbox / "bill.csv", ns=(1, 2_000_000_000_000_000_000))
    await watcher.scan_once()
    restated = await watcher.scan_once()
    assert [r.status for r in restated] == ["completed"] and restated[0].version > first[0].version
    assert len(await read_topic(settings.kafka, Topics.RAW_BILLING, 5)) == 5


@pytest.fixture
def moto_s3():
    port = free_port()
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "moto_server"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_watched_s3_prefix_imports_new_exports(settings, tmp_path, importer, moto_s3):  # noqa: F811
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket="billing")
    month(tmp_path / "cur.csv", ["5.00", "6.00"])
    s3.upload_file(str(tmp_path / "cur.csv"), "billing", "exports/2024-09/cur.csv")
    s3.put_object(Bucket="billing", Key="other/ignored.csv", Body=b"a,b\n")
    watcher = S3Watcher(importer, "s3://billing/exports/", client=s3)
    await watcher.scan_once()
    results = await watcher.scan_once()
    assert [r.status for r in results] == ["completed"] and results[0].tally.rows_published == 2
    assert await watcher.scan_once() == []
    assert len(await read_topic(settings.kafka, Topics.RAW_BILLING, 2)) == 2
