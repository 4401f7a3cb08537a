"""The consume pipeline under faults, on the real broker and PostgreSQL: a consumer that dies
between its store commit and its offset commit, and a database that drops every connection for
a few seconds mid-stream. Both end with every record stored once and nothing dead-lettered."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import orjson
import pytest

from finfocus.broker import RecordPublisher
from finfocus.consume import Pipeline
from schemas.topics import Topics
from services.pricing.app import build_app
from services.pricing.config import PricingSettings
from services.remediation.app import build_app as build_remediation
from services.remediation.config import RemediationSettings
from tests.integration.test_pricing_pipeline import billed_record, produce, read_topic, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Killed(BaseException):
    """Ends the consume task the way a kill does: nothing after this point runs."""


async def fetch(url: str, sql: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow(sql)
    finally:
        await conn.close()


async def lines(url: str):
    return await fetch(
        url,
        "SELECT count(*) AS n, count(DISTINCT record_id) AS ids, "
        "coalesce(sum(billed_cost), 0) AS total FROM pricing.cost_lines",
    )


@pytest.mark.parametrize("moment", ["before-publish", "before-offset-commit"])
async def test_consumer_killed_after_store_commit_before_offset_commit_redelivers_and_stores_each_record_once(
    settings, monkeypatch, moment
):
    costs = [Decimal(i % 997) / 100 + Decimal("0.01") for i in range(3000)]
    await produce(
        settings.kafka_bootstrap, [orjson.dumps(billed_record(i, c)) for i, c in enumerate(costs)]
    )
    committed_batches: list[int] = []
    original_commit, original_publish = Pipeline._commit, RecordPublisher.publish_batched

    async def dies_before_committing(self, records, stalled):
        if not committed_batches:
            committed_batches.append(len(records))
            raise Killed  # stored and published, offsets not committed
        return await original_commit(self, records, stalled)

    async def dies_before_publishing(self, topic, records):
        records = list(records)
        if not committed_batches:
            committed_batches.append(len(records))
            raise Killed  # stored, nothing published, offsets not committed
        return await original_publish(self, topic, records)

    if moment == "before-publish":
        monkeypatch.setattr(RecordPublisher, "publish_batched", dies_before_publishing)
    else:
        monkeypatch.setattr(Pipeline, "_commit", dies_before_committing)
    config = PricingSettings(**settings.model_dump())
    first = build_app(config)
    await first.start()
    try:
        await wait_for(lambda: _stored_some(settings.database_url), timeout=60)
        await wait_for(lambda: asyncio.sleep(0, bool(committed_batches)), timeout=30)
    finally:
        await first.stop()
    stored_before = (await lines(settings.database_url))["n"]
    assert stored_before > 0 and committed_batches

    second = build_app(config)  # the restarted process: same group, nothing committed
    await second.start()
    try:
        await wait_for(
            lambda: _tracked_at_least(settings.database_url, 3000 + committed_batches[0]),
            timeout=90,
        )
    finally:
        await second.stop()

    after = await lines(settings.database_url)
    assert after["n"] == after["ids"] == 3000
    assert after["total"] == sum(costs, Decimal(0))
    # the killed batch came again (tracked twice), and each record is downstream
    tracked = await fetch(
        settings.database_url, "SELECT sum(records) AS n FROM pricing.processed_batches"
    )
    assert tracked["n"] >= 3000 + committed_batches[0]
    priced = await read_topic(
        settings.kafka_bootstrap, Topics.PRICED_RESOURCES, 3000 + committed_batches[0]
    )
    assert {p["x_RecordId"] for p in priced} == {f"rec-{i}" for i in range(3000)}
    assert (
        await read_topic(settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 1, timeout=2)
        == []
    )


async def test_database_dropping_connections_mid_stream_dead_letters_nothing_and_stores_every_row(
    settings, pg_admin_url
):
    pricing = build_app(PricingSettings(**settings.model_dump()))
    remediation = build_remediation(
        RemediationSettings(**settings.model_dump(), remediation_executor=False)
    )
    await pricing.start()
    await remediation.start()
    database = settings.database_url.rsplit("/", 1)[1]
    costs = [Decimal(i % 500) / 100 + Decimal("0.10") for i in range(4000)]
    records = [orjson.dumps(billed_record(i, c)) for i, c in enumerate(costs)]
    stop = asyncio.Event()
    terminated = 0

    async def drop_connections() -> None:
        nonlocal terminated
        admin = await asyncpg.connect(pg_admin_url)
        try:
            while not stop.is_set():
                terminated += len(
                    await admin.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()",
                        database,
                    )
                )
                await asyncio.sleep(0.05)
        finally:
            await admin.close()

    try:
        await produce(settings.kafka_bootstrap, records[:1000])
        chaos = asyncio.create_task(drop_connections())
        await produce(settings.kafka_bootstrap, records[1000:3000])
        await asyncio.sleep(3)
        stop.set()
        await chaos
        await produce(settings.kafka_bootstrap, records[3000:])

        async def all_stored() -> bool:
            priced = await fetch(
                settings.database_url, "SELECT count(*) AS n FROM pricing.cost_lines"
            )
            costed = await fetch(
                settings.database_url, "SELECT count(*) AS n FROM remediation.cost_lines"
            )
            return priced["n"] == 4000 and costed["n"] == 4000

        await wait_for(all_stored, timeout=120)
    finally:
        stop.set()
        await remediation.stop()
        await pricing.stop()
    assert terminated > 0
    after = await lines(settings.database_url)
    assert after["n"] == 4000 and after["total"] == sum(costs, Decimal(0))
    costed = await fetch(
        settings.database_url,
        "SELECT coalesce(sum(billed_cost), 0) AS total FROM remediation.cost_lines",
    )
    assert costed["total"] == sum(costs, Decimal(0))
    assert (
        await read_topic(settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 1, timeout=2)
        == []
    )
    assert (
        await read_topic(
            settings.kafka_bootstrap, Topics.dlq(Topics.PRICED_RESOURCES), 1, timeout=2
        )
        == []
    )


async def _stored_some(url: str) -> bool:
    try:
        return (await lines(url))["n"] > 0
    except asyncpg.UndefinedTableError:
        return False


async def _tracked_at_least(url: str, n: int) -> bool:
    row = await fetch(url, "SELECT coalesce(sum(records), 0) AS n FROM pricing.processed_batches")
    return row["n"] >= n


async def test_health_file_reports_committed_offsets_log_end_and_no_lag_once_stored(settings):
    import json
    import os
    import stat

    settings.home.mkdir(parents=True, exist_ok=True)
    await produce(
        settings.kafka_bootstrap,
        [orjson.dumps(billed_record(i, Decimal("1.25"))) for i in range(800)],
    )
    app = build_app(PricingSettings(**settings.model_dump()))
    await app.start()
    path = settings.home / "run" / "health" / f"pricing-{os.getpid()}.json"

    async def caught_up() -> bool:
        if not path.exists():
            return False
        consumers = json.loads(path.read_text())["consumers"]
        return sum(c["committed"] or 0 for c in consumers) == 800 and all(
            c["lag"] == 0 for c in consumers
        )

    try:
        await wait_for(caught_up, timeout=60)
        report = json.loads(path.read_text())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await app.stop()
    assert report["service"] == "pricing" and report["pid"] == os.getpid()
    assert report["state"] == "running" and report["reason"] is None
    raw = [c for c in report["consumers"] if c["topic"] == Topics.RAW_BILLING]
    assert {c["group"] for c in raw} == {"finfocus-pricing"}
    assert sum(c["log_end"] for c in raw) == 800
    assert not any(c["stalled"] or c["retrying"] for c in raw)
    assert not path.exists()  # removed on a clean stop


async def test_rows_the_store_refuses_in_a_bulk_write_are_bisected_out_and_only_they_are_dead_lettered(
    settings,
):
    import random
    import string

    rng = random.Random(13)
    huge = "".join(
        rng.choice(string.ascii_letters + string.digits) for _ in range(8000)
    )  # no compression
    good = [orjson.dumps(billed_record(i, Decimal("2.50"))) for i in range(300)]
    # the contract accepts both; PostgreSQL's btree refuses an 8000-byte key (pricing's record
    # id; remediation's resource index)
    long_id = orjson.dumps(billed_record(300, Decimal("1"), x_RecordId=huge))
    long_resource = orjson.dumps(billed_record(301, Decimal("1"), ResourceId=huge))
    pricing = build_app(PricingSettings(**settings.model_dump()))
    remediation = build_remediation(
        RemediationSettings(**settings.model_dump(), remediation_executor=False)
    )
    await pricing.start()
    await remediation.start()
    try:
        await produce(settings.kafka_bootstrap, [*good[:150], long_id, long_resource, *good[150:]])

        async def settled() -> bool:
            priced = await fetch(
                settings.database_url, "SELECT count(*) AS n FROM pricing.cost_lines"
            )
            costed = await fetch(
                settings.database_url, "SELECT count(*) AS n FROM remediation.cost_lines"
            )
            return priced["n"] == 301 and costed["n"] == 300

        await wait_for(settled, timeout=90)
        refused_raw = await read_topic(
            settings.kafka_bootstrap, Topics.dlq(Topics.RAW_BILLING), 2, timeout=5
        )
        refused_priced = await read_topic(
            settings.kafka_bootstrap, Topics.dlq(Topics.PRICED_RESOURCES), 2, timeout=5
        )
    finally:
        await remediation.stop()
        await pricing.stop()
    assert [(d["service"], d["source_offset"]) for d in refused_raw] == [("pricing", 150)]
    assert refused_raw[0]["error"].startswith("cannot store record: ProgramLimitExceededError")
    assert [d["service"] for d in refused_priced] == ["remediation"]
    assert (
        "cannot store record" in refused_priced[0]["error"]
        and "index row" in refused_priced[0]["error"]
    )
    assert orjson.loads(refused_priced[0]["original"])["x_RecordId"] == "rec-301"


async def test_partition_whose_work_keeps_failing_is_paused_reported_stalled_and_resumed_without_loss(
    settings, tmp_path
):
    import json
    import os

    from aiokafka import AIOKafkaProducer

    from finfocus.service import ServiceRuntime

    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_init.sql").write_text(
        "CREATE TABLE items (id text PRIMARY KEY, n integer NOT NULL);"
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = ServiceRuntime("pipelinedemo", settings)
    runtime.retry.base_s, runtime.retry.stall_retry_s = 0.05, 2.0
    broken = {"yes": True}

    async def save(conn, items: list[dict]) -> None:
        if broken["yes"] and any(i["id"] == "poison" for i in items):
            raise RuntimeError("a bug on this record")
        await conn.executemany(
            "INSERT INTO pipelinedemo.items VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(i["id"], i["n"]) for i in items],
        )

    runtime.consume(
        "demo-things",
        group="finfocus-pipelinedemo",
        decode=lambda env: orjson.loads(env.value),
        work=save,
    )
    app = runtime.app(migrations)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for p in range(4):  # auto-created with 4 partitions; the poison on partition 1
            for n in range(20):
                key = "poison" if (p, n) == (1, 5) else f"p{p}-{n}"
                await producer.send("demo-things", orjson.dumps({"id": key, "n": n}), partition=p)
        await producer.flush()
    finally:
        await producer.stop()
    path = settings.home / "run" / "health" / f"pipelinedemo-{os.getpid()}.json"
    await app.start()
    try:

        async def count() -> int:
            return (
                await fetch(settings.database_url, "SELECT count(*) AS n FROM pipelinedemo.items")
            )["n"]

        await wait_for(lambda: _is(count, 60), timeout=60)  # the other three partitions

        async def reported_stalled() -> bool:
            if not path.exists():
                return False
            report = json.loads(path.read_text())
            return report["state"] == "degraded" and any(
                c["partition"] == 1 and c["stalled"] for c in report["consumers"]
            )

        await wait_for(reported_stalled, timeout=30)
        report = json.loads(path.read_text())
        stalled = [c for c in report["consumers"] if c["partition"] == 1][0]
        assert "a bug on this record" in stalled["last_error"] and stalled["lag"] == 20
        assert await count() == 60  # nothing of partition 1 skipped past, nothing dead-lettered
        broken["yes"] = False  # the fix is deployed; the paused partition is tried again
        await wait_for(lambda: _is(count, 80), timeout=30)
        await wait_for(
            lambda: asyncio.sleep(0, json.loads(path.read_text())["state"] == "running"), timeout=10
        )
    finally:
        await app.stop()
    assert await read_topic(settings.kafka_bootstrap, "demo-things.dlq", 1, timeout=2) == []


async def _is(probe, expected) -> bool:
    return await probe() == expected
