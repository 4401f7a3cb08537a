"""Wiring of the forecast service: priced records in, daily series, forecasts and budgets out."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.service import ServiceRuntime
from services.forecast.config import ForecastSettings
from services.forecast.handlers import register_handlers
from services.forecast.refit import Refitter
from services.forecast.store import ForecastStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def build_app(settings: ForecastSettings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The forecast service as a FastStream app (nothing connects until it starts)."""
    if settings is None:
        settings = ForecastSettings()
    elif not isinstance(settings, ForecastSettings):
        settings = ForecastSettings(**settings.model_dump())
    runtime = ServiceRuntime(
        "forecast",
        settings,
        tracer_provider,
        description="Daily cost series per dimension, forecasts with 80/95 % intervals, budgets",
    )
    store = ForecastStore(runtime)
    refitter = Refitter(store, settings)
    register_handlers(runtime, store, refitter)
    app = runtime.app(MIGRATIONS_DIR, on_started=[refitter.start], on_stopping=[refitter.stop])
    app.refitter = refitter  # type: ignore[attr-defined] - tests wait on refitter.idle
    app.store = store  # type: ignore[attr-defined]
    return app
