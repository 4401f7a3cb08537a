"""The `ingest` schema: import jobs (with their leases), refused rows, the chunks each job
staged and published (for resuming and replay), and recoveries after a broker loss."""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from services.ingest.domain import Built, JobTally, Rejection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: only a completed job that published rows makes the same files a no-op: a failed or fully
#: rejected import (a wrong --format) can be imported again
FIND_COMPLETED = """
SELECT job_id FROM ingest.import_jobs
WHERE checksum = $1 AND status = 'completed' AND rows_published > 0 ORDER BY version DESC LIMIT 1"""
START_JOB = """
INSERT INTO ingest.import_jobs (job_id, status, source, format, checksum, files, lease_owner,
                                lease_until, heartbeat_at)
VALUES ($1, 'running', $2, $3, $4, $5, $6, now() + make_interval(secs => $7), now()) RETURNING version"""
HEARTBEAT = """
UPDATE ingest.import_jobs SET heartbeat_at = now(), lease_until = now() + make_interval(secs => $3)
WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'"""
RELEASE_LEASE = (
    "UPDATE ingest.import_jobs SET lease_until = now() WHERE job_id = $1 AND lease_owner = $2"
)
RECORD_TALLY = """
UPDATE ingest.import_jobs SET providers = $2, accounts = $3, billing_periods = $4, billing_scopes = $5,
    rows_read = $6, rows_published = $7, rows_rejected = $8, totals = $9, rejection_reasons = $10,
    scope_figures = $11
WHERE job_id = $1"""
STAGED = "UPDATE ingest.import_jobs SET phase = 'publishing', chunks_staged = $2 WHERE job_id = $1"
CHUNK_PUBLISHED = """
UPDATE ingest.import_jobs SET chunks_published = greatest(chunks_published, $2), heartbeat_at = now()
WHERE job_id = $1"""
FINISH_JOB = """
UPDATE ingest.import_jobs SET status = $2, error = $3, phase = 'done', lease_owner = NULL,
    lease_until = NULL, finished_at = now()
WHERE job_id = $1"""
DROP_CHUNKS = "DELETE FROM ingest.published_chunks WHERE job_id = $1"
#: one running job whose lease expired (its process died), taken over under a new lease
CLAIM_ABANDONED = """
UPDATE ingest.import_jobs SET status = 'abandoned', lease_owner = $1,
    lease_until = now() + make_interval(secs => $2), heartbeat_at = now()
WHERE job_id = (
    SELECT job_id FROM ingest.import_jobs
    WHERE status IN ('running', 'abandoned') AND coalesce(lease_until < now(), true)
    ORDER BY version LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING *"""
#: per scope, the newest completed job that holds it, and that job's figures
PREVIOUS_SCOPES = """
SELECT DISTINCT ON (scope) scope, j.job_id, j.scope_figures -> scope AS figures,
       j.rows_published, j.totals, cardinality(j.billing_scopes) AS scopes
FROM ingest.import_jobs j, unnest(j.billing_scopes) AS scope
WHERE j.status = 'completed' AND scope = ANY ($1::text[])
ORDER BY scope, j.version DESC"""
#: completed jobs with kept chunks, oldest first, without those every scope of which a newer
#: completed job superseded (pricing would ignore their rows)
REPLAYABLE_JOBS = """
SELECT j.job_id, j.chunks_staged FROM ingest.import_jobs j
WHERE j.status = 'completed' AND j.rows_published > 0
  AND (cardinality(j.billing_scopes) = 0 OR EXISTS (
        SELECT 1 FROM unnest(j.billing_scopes) AS scope
        WHERE NOT EXISTS (
            SELECT 1 FROM ingest.import_jobs n
            WHERE n.status = 'completed' AND n.version > j.version AND scope = ANY (n.billing_scopes))))
ORDER BY j.version"""
GET_JOB = "SELECT * FROM ingest.import_jobs WHERE job_id = $1"
SAVE_CHUNK = """
INSERT INTO ingest.published_chunks (job_id, seq, rows, scopes, payload) VALUES ($1, $2, $3, $4, $5)"""
#: replay sends what completed jobs published only: an unfinished job is the sweep's to finish
JOB_CHUNKS = """
SELECT c.scopes, c.payload FROM ingest.published_chunks c
JOIN ingest.import_jobs j ON j.job_id = c.job_id AND j.status = 'completed'
WHERE c.job_id = $1 ORDER BY c.seq"""
JOB_CHUNKS_FROM = "SELECT seq, scopes, payload FROM ingest.published_chunks WHERE job_id = $1 AND seq >= $2 ORDER BY seq"
#: the chunks of the newest completed job of every scope of a billing period
PERIOD_CHUNKS = """
WITH latest AS (
    SELECT DISTINCT ON (scope) scope, job_id
    FROM ingest.import_jobs j, unnest(j.billing_scopes) AS scope
    WHERE j.status = 'completed' AND scope LIKE '%:' || $1
    ORDER BY scope, j.version DESC)
SELECT DISTINCT c.job_id, c.seq, c.scopes, c.payload FROM ingest.published_chunks c
JOIN latest l ON l.job_id = c.job_id AND l.scope = ANY (c.scopes)
ORDER BY c.job_id, c.seq"""
REJECTED_COLUMNS = ("job_id", "file", "row_number", "reason", "original")


#: a zstd chunk: this tag, the uncompressed size (8 bytes, little endian), the zstd frame;
#: chunks stored before it are zlib streams (they start with 0x78, never with the tag)
ZSTD_TAG = b"FFZ1"


@functools.cache
def _zstd():
    """pyarrow's zstd codec, loaded with the first chunk (not at every service start)."""
    import pyarrow as pa

    return pa.Codec("zstd", 1)


def pack(built: Built) -> bytes:
    """Key and value of each record, NUL-separated, one per line, zstd-compressed (level 1:
    a third of zlib's time at twice its ratio on billing JSON; packing every published chunk
    for replay was the largest cost of an import after normalising)."""
    text = b"\n".join(k + b"\x00" + v for k, v in zip(built.keys, built.values))
    return ZSTD_TAG + len(text).to_bytes(8, "little") + _zstd().compress(text, asbytes=True)


def unpack(payload: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of a packed chunk. Neither holds a NUL or a line break (JSON
    escapes both, keys are provider:account and NUL bytes refuse a file), so one split on
    both separators gives keys and values alternately (a partition per record cost as much
    as decompressing, and every staged chunk is unpacked again to be published)."""
    if payload[:4] == ZSTD_TAG:
        size = int.from_bytes(payload[4:12], "little")
        text = _zstd().decompress(payload[12:], decompressed_size=size, asbytes=True)
    else:
        text = zlib.decompress(payload)
    if not text:
        return []
    parts = text.rstrip(b"\n").replace(b"\x00", b"\n").split(b"\n")
    if len(parts) % 2:  # not alternating: a key without value somewhere, read line by line
        return [
            (k, v) for k, _, v in (line.partition(b"\x00") for line in text.split(b"\n") if line)
        ]
    return list(zip(parts[0::2], parts[1::2]))


class IngestStore:
    """SQL of the `ingest` schema; `pool` is a callable so the service can bind it before start."""

    def __init__(self, pool: Callable[[], asyncpg.Pool] | asyncpg.Pool) -> None:
        self._pool = (
            pool if callable(pool) and not isinstance(pool, asyncpg.Pool) else (lambda: pool)
        )

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool()  # type: ignore[operator]

    async def completed_job_for(self, checksum: str) -> str | None:
        return await self.pool.fetchval(FIND_COMPLETED, checksum)

    async def start_job(
        self,
        job_id: str,
        *,
        checksum: str,
        files: list[dict],
        format: str | None,
        source: str,
        owner: str = "",
        lease_s: float = 60.0,
    ) -> int:
        """Record a running job under a lease; returns its version (the x_BillingScopeVersion
        of its rows)."""
        return await self.pool.fetchval(
            START_JOB, job_id, source, format, checksum, files, owner, float(lease_s)
        )

    async def heartbeat(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Renew the job's lease; False when another process took the job over."""
        return await self.pool.execute(HEARTBEAT, job_id, owner, float(lease_s)) == "UPDATE 1"

    async def release_lease(self, job_id: str, owner: str) -> None:
        """Let the lease lapse now: the ingest service takes the job over at its next sweep."""
        await self.pool.execute(RELEASE_LEASE, job_id, owner)

    async def save_chunk(self, job_id: str, seq: int, built: Built) -> None:
        await self.pool.execute(
            SAVE_CHUNK, job_id, seq, len(built), sorted(built.scopes), pack(built)
        )

    async def save_rejections(self, job_id: str, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        rows = [
            (job_id, r.file, r.row, r.reason, orjson.loads(orjson.dumps(r.original, default=str)))
            for r in rejections
        ]
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO ingest.rejected_rows VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                rows,
            )

    async def record_tally(self, job_id: str, tally: JobTally) -> None:
        s = tally.summary()
        await self.pool.execute(
            RECORD_TALLY,
            job_id,
            s["providers"],
            s["accounts"],
            s["billing_periods"],
            s["billing_scopes"],
            s["rows_read"],
            s["rows_published"],
            s["rows_rejected"],
            s["totals"],
            s["rejection_reasons"],
            tally.scope_figures(),
        )

    async def staged(self, job_id: str, chunks: int) -> None:
        """Every chunk is kept: from here on the job is finished by publishing, never dropped."""
        await self.pool.execute(STAGED, job_id, chunks)

    async def chunk_published(self, job_id: str, seq: int) -> None:
        await self.pool.execute(CHUNK_PUBLISHED, job_id, seq + 1)

    async def finish_job(self, job_id: str, *, status: str, error: str | None = None) -> None:
        """Completed, or failed: a failed job's staged chunks are dropped (replay never sends
        what was not published)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if status == "failed":
                await conn.execute(DROP_CHUNKS, job_id)
            await conn.execute(FINISH_JOB, job_id, status, error)

    async def claim_abandoned(self, owner: str, lease_s: float) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(CLAIM_ABANDONED, owner, float(lease_s))
        return dict(row) if row else None

    async def chunks_from(
        self, job_id: str, seq: int
    ) -> AsyncIterator[tuple[int, bool, list[tuple[bytes, bytes]]]]:
        """The job's kept chunks from `seq` on, one at a time (a job may be millions of rows):
        sequence number, whether its records carry billing scopes, the records."""
        last = seq - 1
        while True:
            row = await self.pool.fetchrow(JOB_CHUNKS_FROM + " LIMIT 1", job_id, last + 1)
            if row is None:
                return
            last = row["seq"]
            yield last, bool(row["scopes"]), unpack(row["payload"])

    async def previous_scopes(self, scopes: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Per scope, the newest completed job that holds it and its figures for that scope.
        A job recorded before per-scope figures gives its own figures when it held that one
        scope only; otherwise the scope is left out (nothing to compare with)."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for row in await self.pool.fetch(PREVIOUS_SCOPES, scopes):
            if row["figures"] is not None:
                found[row["scope"]] = (row["job_id"], row["figures"])
            elif row["scopes"] == 1:
                found[row["scope"]] = (
                    row["job_id"],
                    {"rows": row["rows_published"], "totals": row["totals"]},
                )
        return found

    async def replayable_jobs(self) -> list[str]:
        return [r["job_id"] for r in await self.pool.fetch(REPLAYABLE_JOBS)]

    async def last_epoch(self) -> str | None:
        return await self.pool.fetchval("SELECT epoch FROM ingest.broker_epoch")

    async def record_epoch(self, epoch: str) -> None:
        await self.pool.execute(
            "INSERT INTO ingest.broker_epoch (epoch) VALUES ($1) ON CONFLICT (only_row) "
            "DO UPDATE SET epoch = EXCLUDED.epoch, recorded_at = now()",
            epoch,
        )

    async def start_recovery(self, epoch: str) -> int:
        return await self.pool.fetchval(
            "INSERT INTO ingest.recoveries (epoch) VALUES ($1) RETURNING recovery_id", epoch
        )

    async def recovery_progress(
        self,
        recovery_id: int,
        jobs: int,
        rows: int,
        state: str = "running",
        error: str | None = None,
    ) -> None:
        await self.pool.execute(
            "UPDATE ingest.recoveries SET jobs = $2, rows = $3, state = $4, error = $5, "
            "finished_at = CASE WHEN $4 = 'running' THEN NULL ELSE now() END WHERE recovery_id = $1",
            recovery_id,
            jobs,
            rows,
            state,
            error,
        )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(GET_JOB, job_id)
        return dict(row) if row else None

    async def rejected(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT file, row_number, reason FROM ingest.rejected_rows WHERE job_id = $1 "
            "ORDER BY file, row_number",
            job_id,
        )
        return [dict(r) for r in rows]

    async def published(
        self, *, job_id: str | None = None, period: str | None = None
    ) -> AsyncIterator[tuple[bool, list[tuple[bytes, bytes]]]]:
        """What a job (or the newest import of every scope of a `YYYY-MM` period) published,
        chunk by chunk, with whether the chunk's records carry billing scopes."""
        async with self.pool.acquire() as conn, conn.transaction():
            if job_id is not None:
                cursor = conn.cursor(JOB_CHUNKS, job_id)
            else:
                cursor = conn.cursor(PERIOD_CHUNKS, period)
            async for row in cursor:
                yield bool(row["scopes"]), unpack(row["payload"])
