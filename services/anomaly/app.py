"""Wiring of the anomaly service: `finfocus serve anomaly` runs `build_app()`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from finfocus.broker import ensure_topics
from finfocus.secrets import secrets_from_environment
from finfocus.service import ServiceRuntime
from services.anomaly.config import AnomalySettings
from services.anomaly.engine import Evaluator
from services.anomaly.handlers import FEEDBACK_TOPIC, register_handlers, republish
from services.anomaly.monitor_commands import register_monitor_commands
from services.anomaly.monitors import MonitorRegistry
from services.anomaly.notifier import Notifier, SubscriptionSource
from services.anomaly.store import AnomalyStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def build_app(
    settings: AnomalySettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    """The anomaly service: priced-resources -> daily series in `anomaly` -> anomalies."""
    settings = AnomalySettings.extending(settings)
    runtime = ServiceRuntime(
        "anomaly",
        settings,
        tracer_provider,
        description="Detects cost anomalies per monitored dimension and publishes them",
    )
    store = AnomalyStore(runtime)
    monitors = MonitorRegistry(settings.monitors_file)
    evaluator = Evaluator(
        monitors.current,
        max_days=settings.anomaly_max_days,
        suppress_days=settings.anomaly_suppress_days,
        lateness=timedelta(hours=settings.anomaly_lateness_hours),
    )
    notifier = Notifier(
        SubscriptionSource(settings.subscriptions_file).current,
        secrets_from_environment(),
        poll_s=settings.anomaly_alert_poll_s,
        retry_base_s=settings.anomaly_alert_retry_base_s,
        max_attempts=settings.anomaly_alert_max_attempts,
    )
    register_handlers(runtime, store, evaluator, notifier)
    register_monitor_commands(runtime, monitors)

    async def start_worker() -> None:
        await ensure_topics(settings.kafka, settings.partitions, [FEEDBACK_TOPIC])
        await monitors.refresh(runtime.pool)  # the stored monitors (imported from the file once)
        monitors.start(lambda: runtime.pool)
        notifier.start(runtime.pool)
        if settings.broker_epoch:
            # after a broker loss: what downstream may have missed goes back into the outbox
            # (the 30 s margin covers health files written a moment apart), then out, signed
            since = settings.broker_recover_since
            requeued = await store.requeue_since(
                settings.broker_epoch, since - timedelta(seconds=30) if since else None
            )
            if requeued:
                await republish(runtime, store)

    return runtime.app(
        MIGRATIONS_DIR, on_started=[start_worker], on_stopping=[notifier.stop, monitors.stop]
    )
