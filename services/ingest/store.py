"""The `ingest` schema: import jobs, refused rows and what each job published (for replay)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pyarrow as pa

from services.ingest.domain import Built, JobTally, Rejection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

FIND_COMPLETED = """
SELECT job_id FROM ingest.import_jobs
WHERE checksum = $1 AND status = 'completed' ORDER BY version DESC LIMIT 1"""
START_JOB = """
INSERT INTO ingest.import_jobs (job_id, status, source, format, checksum, files)
VALUES ($1, 'running', $2, $3, $4, $5) RETURNING version"""
FINISH_JOB = """
UPDATE ingest.import_jobs SET status = $2, error = $3, providers = $4, accounts = $5,
    billing_periods = $6, billing_scopes = $7, rows_read = $8, rows_published = $9,
    rows_rejected = $10, totals = $11, rejection_reasons = $12, format = coalesce($13, format),
    files = coalesce($14, files), finished_at = now()
WHERE job_id = $1"""
GET_JOB = "SELECT * FROM ingest.import_jobs WHERE job_id = $1"
SAVE_CHUNK = """
INSERT INTO ingest.published_chunks (job_id, seq, rows, scopes, payload) VALUES ($1, $2, $3, $4, $5)"""
JOB_CHUNKS = "SELECT payload FROM ingest.published_chunks WHERE job_id = $1 ORDER BY seq"
#: the chunks of the newest completed job of every scope of a billing period
PERIOD_CHUNKS = """
WITH latest AS (
    SELECT DISTINCT ON (scope) scope, job_id
    FROM ingest.import_jobs j, unnest(j.billing_scopes) AS scope
    WHERE j.status = 'completed' AND scope LIKE '%:' || $1
    ORDER BY scope, j.version DESC)
SELECT DISTINCT c.job_id, c.seq, c.payload FROM ingest.published_chunks c
JOIN latest l ON l.job_id = c.job_id AND l.scope = ANY (c.scopes)
ORDER BY c.job_id, c.seq"""
REJECTED_COLUMNS = ("job_id", "file", "row_number", "reason", "original")


#: a zstd chunk: this tag, the uncompressed size (8 bytes, little endian), the zstd frame;
#: chunks stored before it are zlib streams (they start with 0x78, never with the tag)
ZSTD_TAG = b"FFZ1"
_ZSTD = pa.Codec("zstd", 1)


def pack(built: Built) -> bytes:
    """Key and value of each record, NUL-separated, one per line, zstd-compressed (level 1:
    a third of zlib's time at twice its ratio on billing JSON; packing every published chunk
    for replay was the largest cost of an import after normalising)."""
    text = b"\n".join(k + b"\x00" + v for k, v in zip(built.keys, built.values))
    return ZSTD_TAG + len(text).to_bytes(8, "little") + _ZSTD.compress(text, asbytes=True)


def unpack(payload: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    if payload[:4] == ZSTD_TAG:
        size = int.from_bytes(payload[4:12], "little")
        text = _ZSTD.decompress(payload[12:], decompressed_size=size, asbytes=True)
    else:
        text = zlib.decompress(payload)
    for line in text.split(b"\n"):
        if line:
            key, _, value = line.partition(b"\x00")
            out.append((key, value))
    return out


class IngestStore:
    """SQL of the `ingest` schema; `pool` is a callable so the service can bind it before start."""

    def __init__(self, pool: Callable[[], asyncpg.Pool] | asyncpg.Pool) -> None:
        self._pool = pool if callable(pool) and not isinstance(pool, asyncpg.Pool) else (lambda: pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool()  # type: ignore[operator]

    async def completed_job_for(self, checksum: str) -> str | None:
        return await self.pool.fetchval(FIND_COMPLETED, checksum)

    async def start_job(
        self, job_id: str, *, checksum: str, files: list[dict], format: str | None, source: str
    ) -> int:
        """Record a running job; returns its version (the x_BillingScopeVersion of its rows)."""
        return await self.pool.fetchval(START_JOB, job_id, source, format, checksum, files)

    async def save_chunk(self, job_id: str, seq: int, built: Built) -> None:
        await self.pool.execute(SAVE_CHUNK, job_id, seq, len(built), sorted(built.scopes), pack(built))

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

    async def finish_job(
        self,
        job_id: str,
        tally: JobTally,
        *,
        status: str,
        error: str | None = None,
        format: str | None = None,
        files: list[dict] | None = None,
    ) -> None:
        s = tally.summary()
        await self.pool.execute(
            FINISH_JOB,
            job_id,
            status,
            error,
            s["providers"],
            s["accounts"],
            s["billing_periods"],
            s["billing_scopes"],
            s["rows_read"],
            s["rows_published"],
            s["rows_rejected"],
            s["totals"],
            s["rejection_reasons"],
            format,
            files,
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

    async def published(self, *, job_id: str | None = None, period: str | None = None) -> AsyncIterator[list[tuple[bytes, bytes]]]:
        """What a job (or the newest import of every scope of a `YYYY-MM` period) published."""
        async with self.pool.acquire() as conn, conn.transaction():
            if job_id is not None:
                cursor = conn.cursor(JOB_CHUNKS, job_id)
            else:
                cursor = conn.cursor(PERIOD_CHUNKS, period)
            async for row in cursor:
                yield unpack(row["payload"])
