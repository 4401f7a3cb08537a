"""Ingest service: import jobs, source watchers and HTTP intake, publishing to `raw-billing`."""

from __future__ import annotations

import asyncio
import contextlib

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.secrets import secrets_from_environment
from finfocus.service import ServiceRuntime
from schemas.deadletter import DeadLetterV1
from schemas.ingest import BillingRecordV1
from schemas.topics import Topics
from services.ingest.config import IngestSettings
from services.ingest.http import IntakeServer
from services.ingest.importer import Importer, accept_records, dead_letter_raw
from services.ingest.store import MIGRATIONS_DIR, IngestStore
from services.ingest.watch import DirectoryWatcher, S3Watcher, poll


def build_app(settings: IngestSettings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
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
    runtime.publishes(Topics.RAW_BILLING, BillingRecordV1,
                      "Normalised FOCUS rows of import jobs and HTTP intake; key ProviderName:SubAccountId")
    runtime.publishes(Topics.dlq(Topics.RAW_BILLING), DeadLetterV1,
                      "Rows an import refused, with the reason")
    store = IngestStore(lambda: runtime.pool)
    importer = Importer(store, runtime.publisher, runtime.tracer, source="service")
    watchers: list = []
    if settings.ingest_watch_dir:
        watchers.append(DirectoryWatcher(Importer(store, runtime.publisher, runtime.tracer, source="watch-dir"), settings.ingest_watch_dir))
    if settings.ingest_watch_s3:
        watchers.append(S3Watcher(Importer(store, runtime.publisher, runtime.tracer, source="watch-s3"), settings.ingest_watch_s3))
    tasks: list[asyncio.Task] = []
    intake: dict[str, IntakeServer] = {}

    async def start_sources() -> None:
        if watchers:
            tasks.append(asyncio.create_task(poll(watchers, settings.ingest_watch_interval_s)))
        if settings.ingest_http_port:
            secret = secrets_from_environment().get(settings.ingest_token_secret)
            server = IntakeServer(
                token=secret.reveal() if secret else None,
                max_bytes=settings.ingest_http_max_bytes,
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

    app = runtime.app(MIGRATIONS_DIR, on_started=[start_sources], on_stopping=[stop_sources])
    app.ingest_runtime = runtime  # type: ignore[attr-defined]
    app.ingest_importer = importer  # type: ignore[attr-defined]
    app.ingest_watchers = watchers  # type: ignore[attr-defined]
    app.ingest_intake = intake  # type: ignore[attr-defined]
    return app
