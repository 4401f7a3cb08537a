"""Recovery on the real broker and PostgreSQL: a new broker epoch (the embedded broker
restarted empty) makes the ingest service publish its completed jobs again, once; `ingest
--wait` outlives a database that goes away and reports the shortfall."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest

from finfocus.embedded.kafka import start_kafka
from finfocus.embedded.ports import free_port
from schemas.topics import Topics
from services.ingest.app import build_app
from services.ingest.cli.ingest import WaitTimeout, wait_until_priced
from services.ingest.config import IngestSettings
from tests.integration.test_ingest_focus import importer, month_file, read_topic  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def recoveries(database_url: str) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        return [
            dict(r)
            for r in await conn.fetch("SELECT * FROM ingest.v_recoveries ORDER BY started_at")
        ]
    finally:
        await conn.close()


async def run_ingest_service(settings, bootstrap: str, epoch: str) -> None:
    app = build_app(
        IngestSettings(
            **{**settings.model_dump(), "kafka_bootstrap": bootstrap}, broker_epoch=epoch
        )
    )
    await app.start()
    try:
        for _ in range(100):
            found = await recoveries(settings.database)
            if not found or found[-1]["state"] != "running":
                conn = await asyncpg.connect(settings.database)
                try:
                    if await conn.fetchval("SELECT epoch FROM ingest.broker_epoch") == epoch:
                        return
                finally:
                    await conn.close()
            await asyncio.sleep(0.1)
        raise AssertionError("the ingest service did not record the epoch")
    finally:
        await app.stop()


async def test_a_new_broker_epoch_publishes_completed_jobs_again_once(settings, tmp_path, importer):  # noqa: F811
    done = await importer.import_files(
        [month_file(tmp_path / "month.csv", ["1.00", "2.00", "3.00"])]
    )
    refused = await importer.import_files([month_file(tmp_path / "part.csv", ["9.00"])])
    assert (done.status, refused.status) == ("completed", "failed")

    broker = start_kafka(tmp_path / "tansu-after-restart.log")  # the stack's new, empty broker
    try:
        await run_ingest_service(settings, broker.bootstrap, "epoch-2")
        [recovery] = await recoveries(settings.database)
        assert (recovery["epoch"], recovery["state"], recovery["jobs"], recovery["rows"]) == (
            "epoch-2",
            "completed",
            1,
            3,
        )
        records = await read_topic(broker.bootstrap, Topics.RAW_BILLING, 3)
        assert sorted(orjson.loads(r.value)["BilledCost"] for r in records) == [
            "1.00",
            "2.00",
            "3.00",
        ]
        assert all(dict(r.headers)["finfocus-signature"].startswith(b"v1:ingest:") for r in records)

        await run_ingest_service(settings, broker.bootstrap, "epoch-2")  # a restart, same broker
        assert len(await recoveries(settings.database)) == 1
    finally:
        broker.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_wait_outlives_a_database_that_goes_away_and_reports_the_shortfall(database_url):
    real = urlsplit(database_url)
    port = free_port()
    credentials = real.netloc.rsplit("@", 1)[0] + "@" if "@" in real.netloc else ""
    via_proxy = urlunsplit(real._replace(netloc=f"{credentials}127.0.0.1:{port}"))

    with pytest.raises(WaitTimeout, match=r"0 of 5 rows of job-x .*database was unreachable"):
        await wait_until_priced(via_proxy, "job-x", 5, timeout=1.5, poll=0.1)

    async def forward(client_r, client_w):
        server_r, server_w = await asyncio.open_connection(real.hostname, real.port)
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    waiting = asyncio.create_task(wait_until_priced(via_proxy, "job-x", 0, timeout=30, poll=0.1))
    await asyncio.sleep(1.5)  # the database is "restarting"
    assert not waiting.done()
    proxy = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        assert await asyncio.wait_for(waiting, 20) == {"rows": 0, "totals": {}}
    finally:
        proxy.close()
