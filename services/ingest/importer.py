"""One import job: files -> checked FOCUS rows -> `raw-billing`, recorded in the `ingest` schema.

Used by `finfocus ingest` (the CLI acts as the ingest service for the job) and by the
service's watchers. Batches stream through; nothing holds a whole file.

A job counts nothing until it completes: every batch is read, checked, built and kept in
the `ingest` schema first (staging), and only a file read to its end without a fatal error is
published, chunk by chunk with acks=all, then marked `completed`. A hostile or truncated file
therefore publishes nothing. The process holds a lease on the job while it runs; a job whose
lease expired (its process died) is abandoned and `sweep` settles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from opentelemetry import trace

from finfocus.broker import dead_letter
from finfocus.signing import SigningKeys, signer
from finfocus.telemetry import trace_headers
from schemas.topics import Topics, schema_headers
from services.ingest.domain import (
    Built,
    JobTally,
    Rejection,
    ScopeChange,
    scope_changes,
)
from services.ingest.store import IngestStore

if TYPE_CHECKING:
    from services.ingest.reader import Source

# the formats, the reader and the record builder (polars, numpy, pyarrow) are imported by the
# methods that read files: the ingest service builds an Importer at start for its sweeps and
# the HTTP intake, which need none of them

logger = logging.getLogger(__name__)
BILLING_HEADERS = [(k, v.encode()) for k, v in schema_headers("BillingRecord").items()]
DEAD_LETTER_HEADERS = [(k, v.encode()) for k, v in schema_headers("DeadLetter").items()]
#: records carrying a billing scope are signed by ingest, the only issuer pricing trusts for it
ISSUER = "ingest"
DEFAULT_LEASE_S = 60.0


class Publisher(Protocol):
    """`finfocus.broker.RecordPublisher` (acks="all" for imports): `publish_batched` for the
    import's large chunks."""

    async def publish(self, topic: str, records: Any) -> int: ...

    async def publish_batched(self, topic: str, records: Any) -> int: ...


#: progress(bytes_done, bytes_total)
Progress = Callable[[int, int], None]


class ImportRefused(ValueError):
    """The files cannot be imported at all (not a regular file, unreadable header): refused
    before a job is recorded. The text is the one-line reason."""


class LeaseLost(RuntimeError):
    """Another process took the job over (this one stalled past its lease)."""


def one_line(exc: BaseException) -> str:
    """An error as one line for the job record and the terminal (pyarrow's span several)."""
    text = re.sub(r"\s+", " ", str(exc)).strip()
    if len(text) > 400:
        text = text[:400] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class ImportResult:
    """What `import_files` did: a new job, or the job that already imported these files."""

    job_id: str
    status: str
    version: int | None = None
    duplicate_of: str | None = None
    format: str | None = None
    files: list[dict] = field(default_factory=list)
    tally: JobTally = field(default_factory=JobTally)
    rejections: list[Rejection] = field(default_factory=list)
    error: str | None = None
    scope_changes: list[ScopeChange] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "duplicate_of": self.duplicate_of,
            "version": self.version,
            "format": self.format,
            "files": self.files,
            **self.tally.summary(),
            "scope_changes": [c.as_dict() for c in self.scope_changes],
            "rejections": [
                {"file": r.file, "row": r.row, "reason": r.reason} for r in self.rejections[:100]
            ],
            "error": self.error,
        }


def combined_checksum(checksums: list[str]) -> str:
    """One checksum for a set of files (order does not matter)."""
    return hashlib.sha256("\n".join(sorted(checksums)).encode()).hexdigest()


class Importer:
    """Imports export files as one job."""

    def __init__(
        self,
        store: IngestStore,
        publisher: Publisher,
        tracer: trace.Tracer,
        *,
        source: str = "cli",
        keys: SigningKeys | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.tracer = tracer
        self.source = source
        self.keys = keys if keys is not None else SigningKeys()
        self.lease_s = lease_s
        self.owner = f"{source}-{uuid.uuid4().hex[:12]}"

    def _describe(self, paths: list[Path], format: str) -> tuple[list[Source], list[dict]]:
        """Open every file far enough to know its kind and format; refuses what is not a
        readable export (a FIFO, a device, a fake Parquet, binary bytes) before any job."""
        from services.ingest.formats import UnknownFormat, detect
        from services.ingest.reader import Source, file_checksum

        sources, files = [], []
        for p in paths:
            try:
                src = Source(Path(p))
                fmt = format if format != "auto" else detect(src.header())
                files.append(
                    {
                        "path": str(src.path),
                        "name": src.path.name,
                        "sha256": file_checksum(src.path),
                        "bytes": src.size,
                        "format": fmt,
                        "kind": src.kind,
                    }
                )
            except UnknownFormat:
                raise
            except Exception as exc:  # noqa: BLE001 - any reader error: one line, no job
                raise ImportRefused(f"{Path(p).name}: {one_line(exc)}") from None
            sources.append(src)
        return sources, files

    async def import_files(
        self,
        paths: list[Path],
        format: str = "auto",
        progress: Progress | None = None,
        *,
        force: bool = False,
        replace_scope: bool = False,
        dry_run: bool = False,
    ) -> ImportResult:
        """Stage, check, then publish the files as one job.

        `force` imports files a completed job already imported; `replace_scope` lets a file
        supersede billing scopes it covers only part of; `dry_run` reads and checks the files
        and reports the scope changes without recording or publishing anything."""
        from services.ingest.formats import FORMATS, UnknownFormat
        from services.ingest.native import keep_freed_heap

        if format != "auto" and format not in FORMATS:
            raise UnknownFormat(f"unknown format {format!r}: expected auto or {', '.join(FORMATS)}")
        if not dry_run and self.keys.key(ISSUER) is None:
            raise ImportRefused(
                f"no signing key for issuer {ISSUER!r}: set the secret bus-signing/{ISSUER} "
                "or start the embedded stack, which creates one"
            )
        sources, files = self._describe(paths, format)
        checksum = combined_checksum([f["sha256"] for f in files])
        job_format = ",".join(sorted({f["format"] for f in files}))
        earlier = None if force or dry_run else await self.store.completed_job_for(checksum)
        if earlier:
            job = await self.store.job(earlier) or {}
            tally = JobTally(
                rows_read=job.get("rows_read", 0),
                rows_published=job.get("rows_published", 0),
                rows_rejected=job.get("rows_rejected", 0),
            )
            return ImportResult(
                earlier, "duplicate", job.get("version"), earlier, job_format, files, tally
            )

        if dry_run:
            job_id, version = "dry-run", 0
        else:
            job_id = f"job-{uuid.uuid4().hex[:16]}"
            version = await self.store.start_job(
                job_id,
                checksum=checksum,
                files=files,
                format=job_format,
                source=self.source,
                owner=self.owner,
                lease_s=self.lease_s,
            )
        result = ImportResult(job_id, "running", version, None, job_format, files)
        keep_freed_heap()  # each batch's values are freed as the next is built: keep the pages
        lost = asyncio.Event()
        beat = None if dry_run else asyncio.create_task(self._heartbeat(job_id, lost))
        try:
            with self.tracer.start_as_current_span(
                "ingest.import",
                attributes={"finfocus.job_id": job_id, "finfocus.files": len(files)},
            ):
                try:
                    chunks = await self._stage(result, sources, progress, lost, save=not dry_run)
                    refusal = self._refusal(result)
                    if refusal is None:
                        result.scope_changes = scope_changes(
                            result.tally.scope_figures(),
                            await self.store.previous_scopes(sorted(result.tally.scopes)),
                        )
                        partial = [c for c in result.scope_changes if c.partial]
                        if partial and not replace_scope:
                            refusal = (
                                "refused: the files cover only part of billing scope(s) they would "
                                "replace (use --replace-scope to replace them anyway): "
                                + "; ".join(c.line() for c in partial)
                            )
                    if dry_run:
                        result.status, result.error = "dry-run", refusal
                        return result
                    await self.store.record_tally(job_id, result.tally)
                    if refusal is not None:
                        return await self._fail(result, refusal)
                    await self.store.staged(job_id, chunks)
                except (Exception, asyncio.CancelledError) as exc:  # nothing was published
                    if dry_run:
                        result.status, result.error = "failed", one_line(exc)
                        return result
                    await self._fail(
                        result, one_line(exc), log=not isinstance(exc, asyncio.CancelledError)
                    )
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return result
                try:
                    await self._publish_job(job_id, 0, lost)
                except (Exception, asyncio.CancelledError) as exc:
                    # Staged and maybe partly published: the job must be finished, never
                    # dropped. The lease lapses now, so the ingest service resumes it.
                    with contextlib.suppress(Exception):
                        await self.store.release_lease(job_id, self.owner)
                    result.status = "abandoned"
                    result.error = (
                        f"publishing interrupted ({one_line(exc)}); the ingest service "
                        "finishes publishing the staged rows"
                    )
                    logger.info(
                        "import publishing interrupted",
                        extra={"fields": {"job_id": job_id, "error": result.error}},
                    )
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return result
                result.status = "completed"
                await self.store.finish_job(job_id, status="completed")
                return result
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await beat

    @staticmethod
    def _refusal(result: ImportResult) -> str | None:
        """A job with no row to publish is a failure, not a completed import (a header-only
        file, a wrong --format): it can be imported again."""
        tally = result.tally
        if tally.rows_read == 0:
            return "the files hold no data rows"
        if tally.rows_published == 0:
            return f"every one of the {tally.rows_read} rows was rejected (is --format right?)"
        return None

    async def _fail(self, result: ImportResult, reason: str, *, log: bool = True) -> ImportResult:
        result.status, result.error = "failed", reason
        await self.store.finish_job(result.job_id, status="failed", error=reason)
        if log:
            logger.info(
                "import failed", extra={"fields": {"job_id": result.job_id, "error": reason}}
            )
        return result

    async def _heartbeat(self, job_id: str, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(max(self.lease_s / 3, 0.05))
            try:
                if not await self.store.heartbeat(job_id, self.owner, self.lease_s):
                    lost.set()
                    return
            except Exception as exc:  # noqa: BLE001 - the database is restarting: the next beat may reach it
                logger.warning(
                    "job heartbeat failed",
                    extra={"fields": {"job_id": job_id, "error": one_line(exc)}},
                )

    async def _stage(
        self,
        result: ImportResult,
        sources: list[Source],
        progress: Progress | None,
        lost: asyncio.Event,
        *,
        save: bool,
    ) -> int:
        """Read every file to its end, keeping each batch's records; returns the chunk count."""
        from services.ingest.domain import RecordBuilder
        from services.ingest.formats import normalise, projection

        job_id, version = result.job_id, result.version or 0
        total_bytes = sum(s.size for s in sources)
        done_bytes = 0
        seq = 0
        for src, meta in zip(sources, result.files):
            builder = RecordBuilder(file=meta["name"], job_id=job_id, version=version)
            first_row = 1
            for batch in src.batches(projection(meta["format"], src.header())):
                if lost.is_set():
                    raise LeaseLost(f"job {job_id} was taken over by another process")
                checked = normalise(meta["format"], batch, first_row)
                first_row += batch.height
                built = builder.build(checked, result.tally)
                rejected = built.rejections
                if save:
                    await self._dead_letter(rejected)
                    if len(built):
                        await self.store.save_chunk(job_id, seq, built)
                        seq += 1
                    await self.store.save_rejections(job_id, rejected)
                if len(result.rejections) < 100:
                    result.rejections.extend(rejected[: 100 - len(result.rejections)])
                if progress:
                    progress(done_bytes + src.position(), total_bytes)
                await asyncio.sleep(0)  # let the heartbeat run between batches
            done_bytes += src.size
            if progress:
                progress(done_bytes, total_bytes)
        return seq

    async def _publish_job(self, job_id: str, start: int, lost: asyncio.Event | None = None) -> int:
        """Publish the job's kept chunks from `start` on, recording each acknowledged one.
        One chunk at a time: two in flight made aiokafka's per-partition batches wait on
        each other past its timeout under load."""
        sent = 0
        async for seq, scoped, records in self.store.chunks_from(job_id, start):
            if lost is not None and lost.is_set():
                raise LeaseLost(f"job {job_id} was taken over by another process")
            sent += await self._send(records, "ingest.publish", scoped=scoped)
            await self.store.chunk_published(job_id, seq)
        return sent

    async def _send(
        self, records: list[tuple[bytes, bytes]], span_name: str, *, scoped: bool
    ) -> int:
        """One span per chunk; each record carries its traceparent, so pricing and everything
        downstream continue the import's trace (per-record spans would cost more than the
        rest of the import at millions of rows).

        The records of a chunk that carries billing scopes are signed, each (a file's rows
        all carry one; the chunk's kept `scopes` say so without searching every value, which
        cost more than the signature)."""
        if not records:
            return 0
        with self.tracer.start_as_current_span(
            span_name, attributes={"finfocus.records": len(records)}
        ) as span:
            headers = trace_headers(span) + BILLING_HEADERS
            topic = Topics.RAW_BILLING
            if scoped:
                signed = signer(self.keys, ISSUER, topic)
                out = [(k, v, [*headers, signed(v)]) for k, v in records]
            else:
                out = [(k, v, headers) for k, v in records]
            return await self.publisher.publish_batched(topic, out)

    async def _dead_letter(self, rejected: list[Rejection]) -> None:
        if not rejected:
            return
        letters = []
        for r in rejected:
            letter = dead_letter(
                orjson.dumps(r.original, default=str),
                f"{r.file} row {r.row}: {r.reason}",
                service="ingest",
                source_topic=Topics.RAW_BILLING,
            )
            letters.append((None, letter.model_dump_json().encode(), DEAD_LETTER_HEADERS))
        await self.publisher.publish(Topics.dlq(Topics.RAW_BILLING), letters)

    async def replay(self, *, job_id: str | None = None, period: str | None = None) -> int:
        """Publish again what a job (or the newest imports of a billing period) published."""
        sent = 0
        async for scoped, chunk in self.store.published(job_id=job_id, period=period):
            sent += await self._send(chunk, "ingest.replay", scoped=scoped)
        return sent

    async def sweep(self) -> list[tuple[str, str]]:
        """Settle every abandoned job (its lease expired: the process that ran it died).

        A job that had staged all its chunks is finished: its file was read and checked to
        the end, and some of its chunks may already be downstream (where a newer scope
        version supersedes the old rows), so only publishing the rest makes the counts whole
        again; consumers are idempotent on x_RecordId, so chunks sent twice count once. A job
        still staging had published nothing: it is marked failed and its chunks dropped."""
        settled = []
        while (job := await self.store.claim_abandoned(self.owner, self.lease_s)) is not None:
            job_id = job["job_id"]
            if job["phase"] == "publishing":
                try:
                    await self._publish_job(job_id, job["chunks_published"])
                except Exception as exc:  # noqa: BLE001 - broker still down: the lease lapses, next sweep retries
                    logger.warning(
                        "abandoned job not resumed",
                        extra={"fields": {"job_id": job_id, "error": one_line(exc)}},
                    )
                    await self.store.release_lease(job_id, self.owner)
                    settled.append((job_id, "abandoned"))
                    break
                await self.store.finish_job(job_id, status="completed")
                settled.append((job_id, "completed"))
            else:
                await self.store.finish_job(
                    job_id,
                    status="failed",
                    error="abandoned while staging (its process stopped and the lease expired); nothing was published",
                )
                settled.append((job_id, "failed"))
            logger.info(
                "abandoned job settled",
                extra={"fields": {"job_id": job_id, "status": settled[-1][1]}},
            )
        return settled

    async def recover_broker(self, epoch: str) -> dict[str, Any] | None:
        """After the embedded broker restarted empty (a new `epoch`): publish the kept chunks
        of every completed job again (the new broker holds none of them, and any downstream
        copy may have missed any of them), record the recovery, then the epoch.

        None when the epoch is already recorded. A first epoch on a database without a
        completed job records itself only. A failed recovery leaves the old epoch, so the
        next start tries again."""
        last = await self.store.last_epoch()
        if last == epoch:
            return None
        jobs = await self.store.replayable_jobs()
        if last is None and not jobs:
            await self.store.record_epoch(epoch)
            return None
        recovery = await self.store.start_recovery(epoch)
        rows = done = 0
        try:
            for job_id in jobs:
                rows += await self._publish_job(job_id, 0)
                done += 1
                await self.store.recovery_progress(recovery, done, rows)
        except Exception as exc:
            await self.store.recovery_progress(recovery, done, rows, "failed", one_line(exc))
            raise
        await self.store.recovery_progress(recovery, done, rows, "completed")
        await self.store.record_epoch(epoch)
        logger.info(
            "broker recovery", extra={"fields": {"epoch": epoch, "jobs": done, "rows": rows}}
        )
        return {"epoch": epoch, "jobs": done, "rows": rows}


async def accept_records(
    importer: Importer, records: list, checksum: str, *, source: str = "http"
) -> str:
    """Publish already-validated BillingRecord v1 rows (HTTP intake) as one recorded job:
    kept first, then published with acks=all, `completed` once acknowledged.

    Billing scope and version are ingest's to set (one row with version 10^15 would erase
    another account's month): the intake refuses rows that carry them, and they are cleared
    here too, so intake rows carry no scope and always count."""
    from services.ingest.domain import money_text

    job_id = f"job-{uuid.uuid4().hex[:16]}"
    await importer.store.start_job(
        job_id,
        checksum=checksum,
        files=[],
        format="billing-record-v1",
        source=source,
        owner=importer.owner,
        lease_s=importer.lease_s,
    )
    tally = JobTally(rows_read=len(records), rows_published=len(records))
    built = Built()
    for record in records:
        record.x_ImportJobId = job_id
        record.x_BillingScope = None
        record.x_BillingScopeVersion = None
        built.keys.append(record.partition_key())
        built.values.append(record.model_dump_json(exclude_none=True).encode())
        built.record_ids.append(record.x_RecordId or "")
        if record.BilledCost is not None:
            tally.add_totals({record.BillingCurrency: record.BilledCost})
        tally.accounts.add(record.BillingAccountId)
        tally.providers.add(record.ProviderName)
    await importer.store.save_chunk(job_id, 0, built)
    await importer.store.record_tally(job_id, tally)
    await importer.store.staged(job_id, 1)
    try:
        await importer._publish_job(job_id, 0)
    except Exception:
        await importer.store.release_lease(job_id, importer.owner)  # the service's sweep resumes it
        raise
    await importer.store.finish_job(job_id, status="completed")
    logger.info(
        "http intake job",
        extra={
            "fields": {
                "job_id": job_id,
                "rows": len(records),
                "totals": {c: money_text(v) for c, v in tally.totals.items()},
            }
        },
    )
    return job_id


async def dead_letter_raw(
    publisher: Publisher, refused: list[tuple[int, bytes, str]], *, origin: str
) -> None:
    """Dead letters for rows refused at the HTTP intake (original bytes and reason)."""
    letters = []
    for index, raw, reason in refused:
        letter = dead_letter(
            raw,
            f"{origin} row {index}: {reason}",
            service="ingest",
            source_topic=Topics.RAW_BILLING,
        )
        letters.append((None, letter.model_dump_json().encode(), DEAD_LETTER_HEADERS))
    if letters:
        await publisher.publish(Topics.dlq(Topics.RAW_BILLING), letters)
