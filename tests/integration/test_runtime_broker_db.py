"""The shared runtime against the real broker and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from finfocus.broker import consumer_options, ensure_topics, make_broker
from finfocus.db import READER_ROLE, migrate_url, reader
from schemas.topics import Topics

pytestmark = pytest.mark.integration


async def test_topics_bootstrap_creates_core_and_dead_letter_topics(kafka_bootstrap):
    from aiokafka.admin import AIOKafkaAdminClient

    await ensure_topics(kafka_bootstrap, partitions=4)
    await ensure_topics(kafka_bootstrap, partitions=4)  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        names = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {"raw-billing", "raw-billing.dlq", "priced-resources", "anomalies.dlq"} <= names
    assert set(Topics.all()) <= names


async def test_consumer_group_receives_published_messages_quickly(settings):
    broker = make_broker(settings)
    got: list[dict] = []

    @broker.subscriber("probe", batch=True, **consumer_options(settings, group_id="probe-group"))
    async def handle(messages: list[dict]) -> None:
        got.extend(messages)

    async with broker:
        await broker.start()
        await broker.publish_batch(*[{"n": i} for i in range(50)], topic="probe")
        for _ in range(200):
            if len(got) >= 50:
                break
            await asyncio.sleep(0.05)
    assert sorted(m["n"] for m in got) == list(range(50))


async def test_migrations_apply_once_under_concurrency_and_views_are_readable(
    tmp_path: Path, database_url
):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_init.sql").write_text(
        "CREATE TABLE lines (id text PRIMARY KEY, cost numeric NOT NULL);"
        "CREATE VIEW v_lines AS SELECT id, cost FROM lines;"
    )
    (migrations / "0002_more.sql").write_text("INSERT INTO lines VALUES ('a', 1.10);")
    results = await asyncio.gather(
        *[migrate_url(database_url, "probe", migrations) for _ in range(3)]
    )
    assert sorted(v for r in results for v in r) == [1, 2]
    assert await migrate_url(database_url, "probe", migrations) == []
    async with reader(database_url) as conn:
        assert str(await conn.fetchval("SELECT sum(cost) FROM probe.v_lines")) == "1.10"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM probe.lines")
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM probe.schema_migrations") == 2
        assert await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname=$1", READER_ROLE) == 1
    finally:
        await conn.close()
