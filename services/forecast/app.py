"""Wiring of the forecast service: priced records in, daily series, forecasts and budgets out."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.broker import ensure_topics
from finfocus.leader import Leader
from finfocus.service import ServiceRuntime
from schemas.anomaly import AnomalyV1
from schemas.budget import BUDGET_COMMANDS
from schemas.topics import Topics
from services.forecast.budgets import BudgetWatcher
from services.forecast.config import ForecastSettings
from services.forecast.handlers import register_budget_handlers, register_handlers
from services.forecast.refit import Refitter
from services.forecast.store import BudgetStore, ForecastStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def build_app(
    settings: ForecastSettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    """The forecast service as a FastStream app (nothing connects until it starts)."""
    settings = ForecastSettings.extending(settings)
    runtime = ServiceRuntime(
        "forecast",
        settings,
        tracer_provider,
        description="Daily cost series per dimension, forecasts with 80/95 % intervals, budgets",
    )
    store = ForecastStore(runtime)
    watcher = BudgetWatcher(runtime, BudgetStore(store))

    async def check_budgets(*_refit: object) -> None:
        # budgets are judged against the forecasts each refit has just stored
        await watcher.evaluate()

    # one instance refits every series (they are all in the shared tables); the others
    # forward what they stored to it
    leader = Leader("forecast", lambda: settings.database)
    refitter = Refitter(
        store, settings, extra_series=watcher.series, after_refit=check_budgets, leader=leader
    )
    leader.on_elected = leader.on_nudge = refitter.due
    register_handlers(runtime, store, refitter)
    register_budget_handlers(runtime, watcher.store, refitter)
    runtime.publishes(
        Topics.ANOMALIES,
        AnomalyV1,
        "Budget breaches (detector=budget), once per threshold and period",
    )
    app = runtime.app(
        MIGRATIONS_DIR,
        on_started=[leader.start, refitter.start],
        on_stopping=[refitter.stop, leader.stop],
    )

    @app.on_startup
    async def budget_topic() -> None:  # runs after the runtime's bootstrap, before subscribing
        await ensure_topics(settings.kafka, settings.partitions, [BUDGET_COMMANDS])

    app.refitter = refitter  # type: ignore[attr-defined]  # tests wait on refitter.idle
    app.leader = leader  # type: ignore[attr-defined]
    app.store = store  # type: ignore[attr-defined]
    app.budgets = watcher  # type: ignore[attr-defined]
    return app
