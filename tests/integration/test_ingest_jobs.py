"""Jobs that cannot lie (issue 12 item 3), on the real broker and PostgreSQL: a job counts
nothing until it completes, abandoned jobs are settled, failed or fully rejected imports can be
retried, `--force`, and files covering only part of a billing scope are refused with the
figures unless `--replace-scope` (`--dry-run` prints them)."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal

import asyncpg
import orjson
import pytest

from finfocus.broker import RecordPublisher
from schemas.topics import Topics
from services.ingest.importer import Importer
from services.ingest.store import IngestStore
from tests.integration.test_ingest_focus import (  # noqa: F401 - fixtures
    ROOT,
    cli_env,
    finfocus,
    importer,
    month_file,
    pricing,
    read_topic,
    stored_totals,
)
from tests.integration.test_ingest_hostile import csv_text

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
SCOPE = "AWS:000111:2024-10"


async def job_rows(database_url: str) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        return [
            dict(r) for r in await conn.fetch("SELECT * FROM ingest.v_import_jobs ORDER BY version")
        ]
    finally:
        await conn.close()


async def test_a_fully_rejected_import_can_be_imported_again_with_the_right_format(
    settings,
    tmp_path,
    importer,  # noqa: F811
):
    path = month_file(tmp_path / "month.csv", ["1.00", "2.00"])
    wrong = await importer.import_files([path], "gcp")
    assert wrong.status == "failed" and wrong.tally.rows_rejected == 2 and "rejected" in wrong.error
    right = await importer.import_files([path], "focus")
    assert (
        right.status == "completed"
        and right.duplicate_of is None
        and right.tally.rows_published == 2
    )
    again = await importer.import_files([path])
    assert again.status == "duplicate" and again.duplicate_of == right.job_id


async def test_force_imports_a_completed_file_again_under_a_new_version(
    settings,
    tmp_path,
    importer,  # noqa: F811
):
    path = month_file(tmp_path / "month.csv", ["1.00", "2.00"])
    first = await importer.import_files([path])
    forced = await importer.import_files([path], force=True)
    assert (
        forced.status == "completed"
        and forced.job_id != first.job_id
        and forced.version > first.version
    )
    records = await read_topic(settings.kafka, Topics.RAW_BILLING, 4)
    assert len(records) == 4
    assert all(
        dict(r.headers).get("finfocus-signature", b"").startswith(b"v1:ingest:") for r in records
    )


class _DyingPublisher:
    """A broker connection that breaks after the first chunk (the process dies mid-publish)."""

    def __init__(self, real: RecordPublisher) -> None:
        self.real, self.calls = real, 0

    async def publish(self, topic, records):
        return await self.real.publish(topic, records)

    async def publish_batched(self, topic, records):
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("broker connection lost")
        return await self.real.publish_batched(topic, records)


async def test_an_abandoned_job_is_finished_if_staged_and_failed_if_not(
    settings,
    tmp_path,
    importer,  # noqa: F811
):
    store: IngestStore = importer.store
    # a process that died while staging: a running job whose short lease ran out
    await store.start_job(
        "job-dead-staging",
        checksum="x",
        files=[],
        format="focus",
        source="cli",
        owner="gone",
        lease_s=0.2,
    )
    await asyncio.sleep(0.4)
    assert {j["job_id"]: j["status"] for j in await job_rows(settings.database)} == {
        "job-dead-staging": "abandoned"
    }

    # a process whose broker connection broke after its first chunk (of several)
    path = tmp_path / "three-chunks.csv"
    path.write_text(csv_text(70_000))
    dying = Importer(
        store, _DyingPublisher(importer.publisher), importer.tracer, keys=importer.keys, lease_s=0.5
    )
    result = await dying.import_files([path])
    assert result.status == "abandoned" and "finishes publishing" in result.error
    await asyncio.sleep(0.6)

    sweeper = Importer(
        store, importer.publisher, importer.tracer, source="service", keys=importer.keys, lease_s=5
    )
    settled = dict(await sweeper.sweep())
    assert settled == {"job-dead-staging": "failed", result.job_id: "completed"}
    jobs = {j["job_id"]: j for j in await job_rows(settings.database)}
    assert jobs["job-dead-staging"]["error"].startswith("abandoned while staging")
    resumed = jobs[result.job_id]
    assert (
        resumed["status"] == "completed"
        and resumed["chunks_published"] == resumed["chunks_staged"] > 1
    )
    records = await read_topic(settings.kafka, Topics.RAW_BILLING, 70_000, timeout=60)
    assert len({orjson.loads(r.value)["x_RecordId"] for r in records}) == 70_000


async def test_kill_9_mid_import_leaves_an_abandoned_job_that_publishes_nothing(
    settings,
    tmp_path,
    importer,  # noqa: F811
):
    path = tmp_path / "big.csv"
    path.write_text(csv_text(200_000))
    env = {**cli_env(settings), "FINFOCUS_INGEST_JOB_LEASE_S": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "finfocus.cli",
        "ingest",
        str(path),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # until the job stages its first chunk
            await asyncio.sleep(0.1)
            conn = await asyncpg.connect(settings.database)
            try:
                chunks = await conn.fetchval("SELECT count(*) FROM ingest.published_chunks")
            finally:
                await conn.close()
            if chunks:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        await proc.wait()
    jobs = await job_rows(settings.database)
    assert len(jobs) == 1 and jobs[0]["phase"] == "staging"
    await asyncio.sleep(1.2)
    assert (await job_rows(settings.database))[0]["status"] == "abandoned"
    assert await importer.sweep() == [(jobs[0]["job_id"], "failed")]
    assert await read_topic(settings.kafka, Topics.RAW_BILLING, 1, timeout=3) == []


async def test_a_file_covering_part_of_a_scope_is_refused_with_the_figures(
    settings,
    tmp_path,
    pricing,  # noqa: F811
):
    month = month_file(tmp_path / "month.csv", ["100.00", "200.00", "300.00", "177.72"])
    code, out, err = await finfocus(
        settings, "ingest", str(month), "--wait", "--wait-timeout", "60"
    )
    assert code == 0, err
    correction = month_file(tmp_path / "correction.csv", ["1.00"])

    code, out, err = await finfocus(
        settings, "ingest", str(correction), "--dry-run", "--output", "json"
    )
    assert code == 0, err
    dry = orjson.loads(out)
    assert dry["status"] == "dry-run" and dry["scope_changes"] == [
        {
            "scope": SCOPE,
            "old_job": dry["scope_changes"][0]["old_job"],
            "old_rows": 4,
            "old_totals": {"USD": "777.72"},
            "new_rows": 1,
            "new_totals": {"USD": "1"},
            "partial": True,
        }
    ]
    assert "would fail" in err and "777.72 USD" in err
    assert len(await job_rows(settings.database)) == 1  # a dry run records nothing

    code, out, err = await finfocus(
        settings, "ingest", str(correction), "--wait", "--wait-timeout", "10"
    )
    assert (
        code == 1
        and "--replace-scope" in err
        and "4 rows, 777.72 USD" in err
        and "1 rows, 1 USD" in err
    )
    assert (await stored_totals(settings.database, SCOPE))["USD"] == (Decimal("777.72"), 4)
    refused = (await job_rows(settings.database))[-1]
    assert (
        refused["status"] == "failed" and refused["rows_published"] == 1
    )  # tallied, not published

    code, out, err = await finfocus(
        settings, "ingest", str(correction), "--replace-scope", "--wait", "--wait-timeout", "60"
    )
    assert code == 0, err  # the refused job does not make the same file a no-op
    assert (await stored_totals(settings.database, SCOPE))["USD"] == (Decimal("1.00"), 1)
