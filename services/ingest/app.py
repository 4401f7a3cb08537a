"""Ingest service: import jobs, source watchers and HTTP intake, publishing to `raw-billing`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.broker import RecordPublisher
from finfocus.secrets import secrets_from_environment
from finfocus.service import ServiceRuntime
from finfocus.signing import SigningKeys, service_keys
from schemas.deadletter import DeadLetterV1
from schemas.ingest import BillingRecordV1
from schemas.topics import Topics
from services.ingest.config import IngestSettings
from services.ingest.http import IntakeLimits, IntakeServer
from services.ingest.importer import Importer, accept_records, dead_letter_raw, one_line
from services.ingest.store import MIGRATIONS_DIR, IngestStore
from services.ingest.watch import DirectoryWatcher, S3Watcher, poll

logger = logging.getLogger(__name__)


def build_app(  # noqa: C901 - wires each optional source (watchers, intake, recovery) in nested closures
    settings: IngestSettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    """The ingest service: owns schema `ingest`, publishes BillingRecord v1 on `raw-billing`.

    Watches `FINFOCUS_INGEST_WATCH_DIR` / `FINFOCUS_INGEST_WATCH_S3` when set, and serves the
    HTTP intake on `FINFOCUS_INGEST_HTTP_PORT` when it is not 0.
    """
    settings = IngestSettings.extending(settings)
    runtime = ServiceRuntime(
        "ingest",
        settings,
        tracer_provider,
        description="Imports provider billing exports, normalises them to FOCUS and publishes "
        "BillingRecord v1 on raw-billing",
    )
    runtime.publishes(
        Topics.RAW_BILLING,
        BillingRecordV1,
        "Normalised FOCUS rows of import jobs and HTTP intake; key ProviderName:SubAccountId",
    )
    runtime.publishes(
        Topics.dlq(Topics.RAW_BILLING), DeadLetterV1, "Rows an import refused, with the reason"
    )
    store = IngestStore(lambda: runtime.pool)
    # imports are `completed` only once the broker acknowledged every chunk with acks=all
    publisher = RecordPublisher(settings.kafka, acks="all")
    keys = SigningKeys(secrets_from_environment(), home=settings.home)  # replaced at start-up

    importers: list[Importer] = []

    def importer_for(source: str) -> Importer:
        importers.append(
            Importer(
                store,
                publisher,
                runtime.tracer,
                source=source,
                keys=keys,
                lease_s=settings.ingest_job_lease_s,
            )
        )
        return importers[-1]

    importer = importer_for("service")
    watchers: list = []
    if settings.ingest_watch_dir:
        watchers.append(DirectoryWatcher(importer_for("watch-dir"), settings.ingest_watch_dir))
    if settings.ingest_watch_s3:
        watchers.append(S3Watcher(importer_for("watch-s3"), settings.ingest_watch_s3))
    tasks: list[asyncio.Task] = []
    intake: dict[str, IntakeServer] = {}

    async def settle_jobs() -> None:
        """Recover after a broker loss first (a new epoch), then sweep abandoned jobs, forever."""
        if settings.broker_epoch:
            while True:
                try:
                    await importer.recover_broker(settings.broker_epoch)
                    break
                except Exception as exc:  # noqa: BLE001 - recorded as a failed recovery; try again
                    logger.warning(
                        "broker recovery failed", extra={"fields": {"error": one_line(exc)}}
                    )
                    await asyncio.sleep(settings.ingest_sweep_interval_s)
        while True:
            try:
                await importer.sweep()
            except Exception as exc:  # noqa: BLE001 - the database or broker is away: next round
                logger.warning(
                    "sweeping abandoned jobs failed", extra={"fields": {"error": one_line(exc)}}
                )
            await asyncio.sleep(settings.ingest_sweep_interval_s)

    async def start_sources() -> None:
        found = service_keys(settings.home, ["ingest"])  # the stack's key file where no secret
        for each in importers:
            each.keys = found
        await publisher.start()
        tasks.append(asyncio.create_task(settle_jobs()))
        if watchers:
            tasks.append(asyncio.create_task(poll(watchers, settings.ingest_watch_interval_s)))
        if settings.ingest_http_port:
            secret = secrets_from_environment().get(settings.ingest_token_secret)
            server = IntakeServer(
                token=secret.reveal() if secret else None,
                limits=IntakeLimits(
                    max_body_bytes=settings.ingest_http_max_bytes,
                    max_rows=settings.ingest_http_max_rows,
                    head_timeout_s=settings.ingest_http_head_timeout_s,
                    body_timeout_s=settings.ingest_http_body_timeout_s,
                    max_connections=settings.ingest_http_max_connections,
                ),
                accept=lambda records, checksum: accept_records(importer, records, checksum),
                reject=lambda refused: dead_letter_raw(runtime.publisher, refused, origin="http"),
            )
            await server.start(settings.ingest_http_host, settings.ingest_http_port)
            intake["server"] = server

    async def stop_sources() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if "server" in intake:
            await intake.pop("server").stop()
        await publisher.stop()

    app = runtime.app(MIGRATIONS_DIR, on_started=[start_sources], on_stopping=[stop_sources])
    app.ingest_runtime = runtime  # type: ignore[attr-defined]
    app.ingest_importer = importer  # type: ignore[attr-defined]
    app.ingest_watchers = watchers  # type: ignore[attr-defined]
    app.ingest_intake = intake  # type: ignore[attr-defined]
    return app
