"""One import job: files -> checked FOCUS rows -> `raw-billing`, recorded in the `ingest` schema.

Used by `finfocus ingest` (the CLI acts as the ingest service for the job) and by the
service's watchers. Batches stream through; nothing holds a whole file.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from opentelemetry import trace

from finfocus.broker import dead_letter
from finfocus.telemetry import trace_headers
from schemas.topics import Topics, schema_headers
from services.ingest.domain import Built, JobTally, RecordBuilder, Rejection
from services.ingest.formats import FORMATS, UnknownFormat, detect, normalise, projection
from services.ingest.native import keep_freed_heap
from services.ingest.reader import Source, file_checksum
from services.ingest.store import IngestStore

logger = logging.getLogger(__name__)
BILLING_HEADERS = [(k, v.encode()) for k, v in schema_headers("BillingRecord").items()]
DEAD_LETTER_HEADERS = [(k, v.encode()) for k, v in schema_headers("DeadLetter").items()]


class Publisher(Protocol):
    """`finfocus.broker.RecordPublisher`: `publish_batched` for the import's large chunks."""

    async def publish(self, topic: str, records: Any) -> int: ...

    async def publish_batched(self, topic: str, records: Any) -> int: ...


#: progress(bytes_done, bytes_total)
Progress = Callable[[int, int], None]


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

    def summary(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "duplicate_of": self.duplicate_of,
            "version": self.version,
            "format": self.format,
            "files": self.files,
            **self.tally.summary(),
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
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.tracer = tracer
        self.source = source

    async def import_files(
        self, paths: list[Path], format: str = "auto", progress: Progress | None = None
    ) -> ImportResult:
        if format != "auto" and format not in FORMATS:
            raise UnknownFormat(f"unknown format {format!r}: expected auto or {', '.join(FORMATS)}")
        sources = [Source(Path(p)) for p in paths]
        files = []
        for src in sources:
            fmt = format if format != "auto" else detect(src.header())
            files.append(
                {"path": str(src.path), "name": src.path.name, "sha256": file_checksum(src.path),
                 "bytes": src.size, "format": fmt, "kind": src.kind}
            )
        checksum = combined_checksum([f["sha256"] for f in files])
        job_format = ",".join(sorted({f["format"] for f in files}))
        earlier = await self.store.completed_job_for(checksum)
        if earlier:
            job = await self.store.job(earlier) or {}
            tally = JobTally(
                rows_read=job.get("rows_read", 0),
                rows_published=job.get("rows_published", 0),
                rows_rejected=job.get("rows_rejected", 0),
            )
            return ImportResult(earlier, "duplicate", job.get("version"), earlier, job_format, files, tally)

        job_id = f"job-{uuid.uuid4().hex[:16]}"
        version = await self.store.start_job(
            job_id, checksum=checksum, files=files, format=job_format, source=self.source
        )
        result = ImportResult(job_id, "running", version, None, job_format, files)
        keep_freed_heap()  # each batch's values are freed as the next is built: keep the pages
        total_bytes = sum(s.size for s in sources)
        done_bytes = 0
        with self.tracer.start_as_current_span(
            "ingest.import", attributes={"finfocus.job_id": job_id, "finfocus.files": len(files)}
        ):
            try:
                seq = 0
                for src, meta in zip(sources, files):
                    builder = RecordBuilder(file=meta["name"], job_id=job_id, version=version)
                    first_row = 1
                    for batch in src.batches(projection(meta["format"], src.header())):
                        checked = normalise(meta["format"], batch, first_row)
                        first_row += batch.height
                        built = builder.build(checked, result.tally)
                        rejected = built.rejections
                        await self._publish(built)
                        await self._dead_letter(rejected)
                        if len(built):
                            await self.store.save_chunk(job_id, seq, built)
                            seq += 1
                        await self.store.save_rejections(job_id, rejected)
                        if len(result.rejections) < 100:
                            result.rejections.extend(rejected[: 100 - len(result.rejections)])
                        if progress:
                            progress(done_bytes + src.position(), total_bytes)
                    done_bytes += src.size
                    if progress:
                        progress(done_bytes, total_bytes)
            except Exception as exc:  # the job is recorded as failed with its reason
                result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
                await self.store.finish_job(job_id, result.tally, status="failed", error=result.error)
                logger.exception("import failed", extra={"fields": {"job_id": job_id}})
                return result
        result.status = "completed"
        await self.store.finish_job(job_id, result.tally, status="completed")
        return result

    async def _publish(self, built: Built) -> None:
        """One span per published chunk; each record carries its traceparent, so pricing and
        everything downstream continue the import's trace (per-record spans would cost more
        than the rest of the import at millions of rows)."""
        if not len(built):
            return
        with self.tracer.start_as_current_span(
            "ingest.publish", attributes={"finfocus.records": len(built)}
        ) as span:
            headers = trace_headers(span) + BILLING_HEADERS
            await self.publisher.publish_batched(
                Topics.RAW_BILLING, [(k, v, headers) for k, v in zip(built.keys, built.values)]
            )

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
        async for chunk in self.store.published(job_id=job_id, period=period):
            with self.tracer.start_as_current_span("ingest.replay") as span:
                headers = trace_headers(span) + BILLING_HEADERS
                sent += await self.publisher.publish(
                    Topics.RAW_BILLING, [(k, v, headers) for k, v in chunk]
                )
        return sent


async def accept_records(importer: Importer, records: list, checksum: str, *, source: str = "http") -> str:
    """Publish already-validated BillingRecord v1 rows (HTTP intake) as one recorded job.

    Rows keep the scope their producer gave them; rows without one always count."""
    from services.ingest.domain import money_text

    job_id = f"job-{uuid.uuid4().hex[:16]}"
    version = await importer.store.start_job(job_id, checksum=checksum, files=[], format="billing-record-v1", source=source)
    tally = JobTally(rows_read=len(records), rows_published=len(records))
    built = Built()
    for record in records:
        record.x_ImportJobId = job_id
        if record.x_BillingScope and record.x_BillingScopeVersion is None:
            record.x_BillingScopeVersion = version
        built.keys.append(record.partition_key())
        built.values.append(record.model_dump_json(exclude_none=True).encode())
        built.record_ids.append(record.x_RecordId or "")
        if record.x_BillingScope:
            built.scopes.add(record.x_BillingScope)
        if record.BilledCost is not None:
            tally.add_totals({record.BillingCurrency: record.BilledCost})
        tally.accounts.add(record.BillingAccountId)
        tally.providers.add(record.ProviderName)
    tally.scopes.update(built.scopes)
    await importer._publish(built)
    await importer.store.save_chunk(job_id, 0, built)
    await importer.store.finish_job(job_id, tally, status="completed")
    logger.info("http intake job", extra={"fields": {"job_id": job_id, "rows": len(records),
                                                      "totals": {c: money_text(v) for c, v in tally.totals.items()}}})
    return job_id


async def dead_letter_raw(publisher: Publisher, refused: list[tuple[int, bytes, str]], *, origin: str) -> None:
    """Dead letters for rows refused at the HTTP intake (original bytes and reason)."""
    letters = []
    for index, raw, reason in refused:
        letter = dead_letter(raw, f"{origin} row {index}: {reason}", service="ingest", source_topic=Topics.RAW_BILLING)
        letters.append((None, letter.model_dump_json().encode(), DEAD_LETTER_HEADERS))
    if letters:
        await publisher.publish(Topics.dlq(Topics.RAW_BILLING), letters)
