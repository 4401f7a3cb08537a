"""Ingest service: import jobs, source watchers and HTTP intake, publishing to `raw-billing`."""

from __future__ import annotations

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.service import ServiceRuntime
from services.ingest.config import IngestSettings
from services.ingest.importer import Importer
from services.ingest.store import MIGRATIONS_DIR, IngestStore


def build_app(settings: IngestSettings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The ingest service: owns schema `ingest`, publishes BillingRecord v1 on `raw-billing`."""
    if settings is not None and not isinstance(settings, IngestSettings):
        settings = IngestSettings(**settings.model_dump())
    settings = settings or IngestSettings()
    runtime = ServiceRuntime(
        "ingest",
        settings,
        tracer_provider,
        description="Imports provider billing exports, normalises them to FOCUS and publishes "
        "BillingRecord v1 on raw-billing",
    )
    store = IngestStore(lambda: runtime.pool)
    importer = Importer(store, runtime.publisher, runtime.tracer, source="service")
    app = runtime.app(MIGRATIONS_DIR)
    app.ingest_runtime = runtime  # type: ignore[attr-defined]
    app.ingest_importer = importer  # type: ignore[attr-defined]
    return app
