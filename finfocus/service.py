"""What every service process shares: telemetry, broker, topic bootstrap, migrations and a pool.

A service's `app.py` builds a `ServiceRuntime`, registers its handlers on `runtime.broker`
and returns `runtime.app(...)`. Nothing connects until the app starts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from finfocus import __version__
from finfocus.broker import RecordPublisher, ensure_topics, make_broker
from finfocus.db import create_pool, migrate_url
from finfocus.settings import FinFocusSettings
from finfocus.telemetry import make_tracer_provider

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class ServiceRuntime:
    """The wiring of one service: its settings, tracer provider, broker and (once started) pool."""

    def __init__(
        self,
        name: str,
        settings: FinFocusSettings,
        tracer_provider: TracerProvider | None = None,
        *,
        description: str | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.tracer_provider = tracer_provider or make_tracer_provider(f"finfocus-{name}")
        self.tracer = self.tracer_provider.get_tracer(f"finfocus.{name}")
        self.broker: KafkaBroker = make_broker(settings, self.tracer_provider, description=description)
        self.publisher = RecordPublisher(settings.kafka)
        self._pool: asyncpg.Pool | None = None
        self.description = description

    @property
    def pool(self) -> asyncpg.Pool:
        """The service's connection pool; exists between start and stop."""
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is used before the service started")
        return self._pool

    def publishes(self, topic: str, model: type, description: str) -> None:
        """Declare an outgoing topic and its contract for the AsyncAPI document.

        Records are sent through `self.publisher` (per-record trace headers); this FastStream
        publisher exists so the generated document shows what the service produces.
        """
        title = f"{topic}:{model.__name__.removesuffix('V1')}"
        self.broker.publisher(topic, schema=model, description=description, title=title)

    def app(
        self,
        migrations: Path,
        *,
        on_started: list[Hook] | None = None,
        on_stopping: list[Hook] | None = None,
    ) -> FastStream:
        """The FastStream app: bootstrap topics and schema before the broker starts."""

        async def prepare() -> None:
            await ensure_topics(self.settings.kafka, self.settings.partitions)
            applied = await migrate_url(self.settings.database, self.name, migrations)
            self._pool = await create_pool(self.settings.database)
            await self.publisher.start()
            logger.info("service ready", extra={"fields": {"service": self.name, "migrations": applied}})

        async def close() -> None:
            await self.publisher.stop()
            if self._pool is not None:
                await self._pool.close()
                self._pool = None

        return FastStream(
            self.broker,
            on_startup=[prepare],
            after_startup=list(on_started or []),
            on_shutdown=list(on_stopping or []),
            after_shutdown=[close],
            specification=AsyncAPI(
                title=f"finfocus-{self.name}",
                version=__version__,
                description=self.description,
            ),
        )
