"""Wiring of the remediation service: planner, cost lines and (by default) the guarded executor."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.service import ServiceRuntime
from services.remediation.config import RemediationSettings
from services.remediation.handlers import register_handlers
from services.remediation.playbooks import install_defaults

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def build_app(settings: RemediationSettings | None = None, *,
              tracer_provider: TracerProvider | None = None) -> FastStream:
    settings = settings or RemediationSettings()
    if not isinstance(settings, RemediationSettings):
        settings = RemediationSettings(**settings.model_dump())
    runtime = ServiceRuntime(
        "remediation", settings, tracer_provider,
        description="Anomalies and recommendations to guarded remediation commands; executor; savings",
    )
    install_defaults(settings.playbooks_dir)
    register_handlers(runtime, settings)
    return runtime.app(MIGRATIONS_DIR)
