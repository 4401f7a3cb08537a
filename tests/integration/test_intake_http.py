"""The HTTP intake at its boundary, in the ingest service on the real broker and PostgreSQL:
every hostile request is cut short with a 4xx (never a traceback, never held open), and a
producer cannot set what only ingest sets."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import psutil
import pytest

from finfocus.embedded.ports import free_port
from schemas.topics import Topics
from services.ingest.app import build_app
from services.ingest.config import IngestSettings
from tests.integration.test_ingest_focus import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "intake-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


@pytest.fixture
async def intake(settings, monkeypatch):
    monkeypatch.setenv("FINFOCUS_SECRET_INGEST_TOKEN", TOKEN)
    port = free_port()
    app = build_app(
        IngestSettings(
            **settings.model_dump(),
            ingest_http_port=port,
            ingest_http_max_bytes=64 * 1024,
            ingest_http_max_rows=20,
            ingest_http_head_timeout_s=0.5,
            ingest_http_body_timeout_s=0.5,
            ingest_http_max_connections=8,
        )
    )
    await app.start()
    try:
        yield port
    finally:
        await app.stop()


async def raw_request(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send bytes as they are and return everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


HEAD = f"POST /v1/billing-records HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"


async def test_a_slow_client_is_cut_off_after_the_header_deadline(intake):
    reader, writer = await asyncio.open_connection("127.0.0.1", intake)
    started = time.monotonic()
    writer.write(b"POST /v1/billing-records HTTP/1.1\r\n")
    closed_after = None
    try:
        for _ in range(40):  # one header byte every 0.1 s: never finishes the head
            writer.write(b"X")
            await writer.drain()
            if reader.at_eof():
                break
            try:
                answer = await asyncio.wait_for(reader.read(), 0.1)
                closed_after = time.monotonic() - started
                break
            except TimeoutError:
                continue
    except ConnectionError:
        closed_after = time.monotonic() - started
        answer = b""
    finally:
        writer.close()
    assert closed_after is not None and closed_after < 2.0, closed_after
    assert answer == b"" or status(answer) == 408


async def test_client_errors_are_4xx_with_a_reason_never_a_traceback(intake):
    minus = await raw_request(intake, (HEAD + "Content-Length: -1\r\n\r\n").encode())
    assert status(minus) == 400
    huge = await raw_request(intake, (HEAD + "X-Big: " + "a" * 70_000 + "\r\n\r\n").encode())
    assert status(huge) in (400, 431)
    many = await raw_request(
        intake,
        (
            HEAD + "".join(f"X-H{i}: v\r\n" for i in range(100)) + "Content-Length: 2\r\n\r\n[]"
        ).encode(),
    )
    assert status(many) == 431
    for answer in (minus, huge, many):
        assert b"Traceback" not in answer and b'File "' not in answer

    url = f"http://127.0.0.1:{intake}/v1/billing-records"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (
            await client.post(url, content=b"[]", headers={"Authorization": "Bearer wrong"})
        ).status_code == 401
        assert (await client.post(url, content=b"[]")).status_code == 401
        over = await client.post(url, content=b"[" + b" " * (64 * 1024) + b"]", headers=AUTH)
        assert over.status_code == 413 and "over the limit" in over.json()["error"]
        rows = await client.post(url, content=orjson.dumps([{}] * 21), headers=AUTH)
        assert rows.status_code == 413 and "more than 20 rows" in rows.json()["error"]
        ndjson_rows = await client.post(url, content=b"{}\n" * 21, headers=AUTH)
        assert ndjson_rows.status_code == 413
        deep = record(1, x_Deep=orjson.loads(b"[" * 40 + b"]" * 40))
        nested = await client.post(url, content=orjson.dumps([deep]), headers=AUTH)
        assert nested.status_code == 400 and "nested deeper" in nested.json()["error"]
        very_deep = b'[{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
        assert (
            await client.post(url, content=very_deep[: 60 * 1024], headers=AUTH)
        ).status_code in (400, 422)
        assert (await client.get(url, headers=AUTH)).status_code == 405
        assert (await client.post(url + "/x", content=b"[]", headers=AUTH)).status_code == 404
        bad = await client.post(
            url, content=orjson.dumps([record(1, BilledCost="1" * 30), 3] * 10), headers=AUTH
        )
        assert (
            bad.status_code == 422
            and bad.json()["rejected"] == 20
            and len(bad.json()["errors"]) == 20
        )


async def test_a_body_that_never_arrives_gets_408(intake):
    answer = await raw_request(intake, (HEAD + "Content-Length: 100\r\n\r\n[").encode())
    assert status(answer) == 408


async def test_surplus_connections_are_closed_at_once(intake):
    held = [await asyncio.open_connection("127.0.0.1", intake) for _ in range(8)]
    try:
        answer = await raw_request(intake, b"", read_timeout=2.0)
        assert status(answer) == 503
    finally:
        for _, writer in held:
            writer.close()


async def test_forty_megabytes_of_header_lines_do_not_grow_memory(intake):
    process = psutil.Process()
    before = process.memory_info().rss
    reader, writer = await asyncio.open_connection("127.0.0.1", intake)
    sent = 0
    try:
        writer.write(HEAD.encode())
        line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
        while sent < 40 * 1024 * 1024:
            writer.write(line * 64)
            sent += len(line) * 64
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
    grown = process.memory_info().rss - before
    assert sent < 40 * 1024 * 1024  # refused long before the 40 MB were taken
    print(f"40 MB header case: refused after {sent} bytes, RSS grew {grown} bytes")
    assert grown < 20 * 1024 * 1024, grown


async def test_rows_setting_the_billing_scope_are_refused_not_stripped(settings, intake):
    url = f"http://127.0.0.1:{intake}/v1/billing-records"
    hijack = [record(1), record(2, x_BillingScope="AWS:999:2024-09", x_BillingScopeVersion=10**15)]
    async with httpx.AsyncClient(timeout=10) as client:
        refused = await client.post(url, content=orjson.dumps(hijack), headers=AUTH)
        assert refused.status_code == 400
        assert "row(s) 1 set x_BillingScope" in refused.json()["error"]
        version_only = await client.post(
            url, content=orjson.dumps(record(3, x_BillingScopeVersion=1)), headers=AUTH
        )
        assert version_only.status_code == 400
        fine = await client.post(url, content=orjson.dumps([record(4)]), headers=AUTH)
        assert fine.status_code == 200 and fine.json()["accepted"] == 1
    published = await read_topic(settings.kafka, Topics.RAW_BILLING, 1, timeout=5)
    assert [orjson.loads(r.value)["BilledCost"] for r in published] == ["4.10"]
