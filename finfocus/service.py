"""What every service process shares: telemetry, broker, topic bootstrap, migrations and a pool.

A service's `app.py` builds a `ServiceRuntime`, registers its handlers on `runtime.broker`
and returns `runtime.app(...)`. Nothing connects until the app starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from finfocus import __version__, health, metrics
from finfocus.broker import (
    RecordPublisher,
    consumer_options,
    ensure_topics,
    make_broker,
    publish_dead_letters,
)
from finfocus.consume import Pipeline, PostgresUnitOfWork, RetryPolicy
from finfocus.db import create_pool, migrate_url
from finfocus.probes import CHECK_TIMEOUT_S, Facts, ProbeServer, readiness
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
        self.broker: KafkaBroker = make_broker(
            settings, self.tracer_provider, description=description
        )
        self.publisher = RecordPublisher(settings.kafka)
        self._pool: asyncpg.Pool | None = None
        self.description = description
        self.pipelines: list[Pipeline] = []
        self.uow = PostgresUnitOfWork(lambda: self.pool, name)
        self.retry = RetryPolicy()
        self.health_period_s = 2.0
        #: starting -> running (broker connected, handlers subscribed) -> stopping
        self.phase = "starting"
        self.probes: ProbeServer | None = None
        self._probe_conn: asyncpg.Connection | None = None

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

    def consume(
        self,
        topic: str,
        *,
        group: str,
        work,
        decode=None,
        decode_batch=None,
        label: str = "record",
        chunk: int | None = None,
        writers: int = 1,
        relay=None,
        after=None,
        data_errors: tuple = (),
        uow=None,
        publish=None,
        **subscriber: Any,
    ) -> Pipeline:
        """Subscribe `topic` (batches, consumer group `group`) through the consume pipeline
        (`finfocus.consume`): manual offset commits after the work's transaction, retries of
        transient errors, per-record dead letters. `subscriber` takes FastStream's subscriber
        options (title, description, max_records, parser, fetch sizes); `uow` and `publish`
        replace the service's transaction and the outgoing records' publisher."""
        pipeline = Pipeline(
            service=self.name,
            group=group,
            uow=uow or self.uow,
            work=work,
            decode=decode,
            decode_batch=decode_batch,
            label=label,
            chunk=chunk,
            writers=writers,
            relay=relay,
            after=after,
            retry=self.retry,
            data_errors=data_errors,
            publish=publish or (lambda t, records: self.publisher.publish_batched(t, records)),
            publish_letters=lambda letters: publish_dead_letters(self.broker, letters),
        )
        options = {**consumer_options(self.settings, group_id=group), **subscriber}
        # auto-commit off (FastStream sets enable_auto_commit from the policy); the pipeline
        # commits the offsets itself once the batch's transaction committed
        options["ack_policy"] = AckPolicy.MANUAL
        options.setdefault("batch", True)
        options.setdefault("title", f"{topic}:{group}")
        sub = self.broker.subscriber(topic, **options)

        @sub
        async def consume(message: KafkaMessage) -> None:
            raw = message.raw_message
            await pipeline.handle(
                raw if isinstance(raw, tuple | list) else (raw,), getattr(message, "consumer", None)
            )

        pipeline.subscriber = sub  # its consumer, for health
        self.pipelines.append(pipeline)
        return pipeline

    def health_report(self, now: float | None = None) -> dict:
        """This process's health document (what `finfocus status` shows per consumer)."""
        parts = []
        for pipeline in self.pipelines:
            self._attach(pipeline)
            parts.extend(pipeline.partitions())
        doc = health.report(self.name, os.getpid(), parts, time.time() if now is None else now)
        if self.probes is not None:
            doc["metrics_url"] = self.probes.url
        return doc

    async def facts(self) -> Facts:
        """What `/readyz` decides on, each check bounded by a short timeout."""
        facts = Facts(phase=self.phase)
        if self.phase != "running":
            return facts
        # both at once: a probe answers within one CHECK_TIMEOUT_S even with both away
        facts.database, facts.broker = await asyncio.gather(
            self._database_problem(), self._broker_problem()
        )
        now = time.time()
        for pipeline in self.pipelines:
            self._attach(pipeline)
            consumer = pipeline.consumer
            try:
                held = len(consumer.assignment()) if consumer is not None else None
            except Exception:  # noqa: BLE001 - a consumer between generations
                held = None
            facts.assigned[pipeline.group] = (facts.assigned.get(pipeline.group) or 0) + (held or 0)
            facts.stalled += [
                f"{p.topic}[{p.partition}] ({p.group})"
                for p in pipeline.partitions()
                if health.is_stalled(p, now)
            ]
        return facts

    async def _broker_problem(self) -> str | None:
        try:
            return None if await self.broker.ping(timeout=CHECK_TIMEOUT_S) else "no answer"
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__

    async def _database_problem(self) -> str | None:
        """None when PostgreSQL answers on the probe's own connection (not the pool's: busy
        writers must not make the service look unreachable)."""
        try:
            if self._probe_conn is None or self._probe_conn.is_closed():
                self._probe_conn = await asyncpg.connect(
                    self.settings.database, timeout=CHECK_TIMEOUT_S
                )
            await self._probe_conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable now
            await self._close_probe_conn()
            return type(exc).__name__

    async def _close_probe_conn(self) -> None:
        conn, self._probe_conn = self._probe_conn, None
        if conn is not None:
            conn.terminate()

    async def ready(self) -> tuple[bool, list[str]]:
        return readiness(await self.facts())

    async def _sample(self, sql: str) -> None:
        """Sample the service's own tables (its `metrics.sql`) for the business gauges."""
        while True:
            try:
                async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                    await conn.execute("SET LOCAL statement_timeout = 5000")
                    rows = await conn.fetch(sql)
                metrics.set_samples(self.name, ((r[0], r[1], r[2]) for r in rows))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the previous values stay; counted and logged
                metrics.SAMPLE_ERRORS.labels(self.name).inc()
                logger.warning("could not sample the tables for metrics", exc_info=True)
            await asyncio.sleep(self.settings.metrics_sample_seconds)

    @staticmethod
    def _attach(pipeline: Pipeline) -> None:
        if pipeline.consumer is None:
            pipeline.consumer = getattr(pipeline.subscriber, "consumer", None)

    def health_path(self) -> Path:
        return Path(self.settings.home) / "run" / "health" / f"{self.name}-{os.getpid()}.json"

    def write_health(self) -> None:
        """Write the health file (0600, whole or not at all) when FINFOCUS_HOME exists."""
        if not Path(self.settings.home).is_dir():
            return
        path = self.health_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.health_report(), f)
        os.replace(tmp, path)

    async def _report_health(self) -> None:
        while True:
            try:
                for pipeline in self.pipelines:
                    self._attach(pipeline)
                    await pipeline.refresh()
                self.write_health()
            except Exception:  # noqa: BLE001 - health reporting must never stop the service
                logger.warning("could not write the health file", exc_info=True)
            await asyncio.sleep(self.health_period_s)

    def app(
        self,
        migrations: Path,
        *,
        on_started: list[Hook] | None = None,
        on_stopping: list[Hook] | None = None,
    ) -> FastStream:
        """The FastStream app: bootstrap topics and schema before the broker starts."""

        async def prepare() -> None:
            self.phase = "starting"
            metrics.watch(self)
            if self.probes is None:
                self.probes = ProbeServer(
                    self.name,
                    self.ready,
                    host=self.settings.metrics_host,
                    port=self.settings.metrics_port or 0,
                )
                await self.probes.start()  # /healthz answers while the rest starts
            await ensure_topics(
                self.settings.kafka, self.settings.partitions, configs=self.settings.topic_configs()
            )
            applied = await migrate_url(self.settings.database, self.name, migrations)
            self._pool = await create_pool(self.settings.database)
            if self.pipelines:
                await self.uow.ensure()
            await self.publisher.start()
            logger.info(
                "service ready", extra={"fields": {"service": self.name, "migrations": applied}}
            )

        tasks: list[asyncio.Task] = []

        async def start_health() -> None:
            self.phase = "running"
            # every process writes its health file: it also says where its metrics are
            tasks.append(asyncio.create_task(self._report_health(), name=f"{self.name}-health"))
            sample_sql = migrations.parent / "metrics.sql"
            if sample_sql.is_file():
                tasks.append(
                    asyncio.create_task(
                        self._sample(sample_sql.read_text()), name=f"{self.name}-sample"
                    )
                )
            relays = {id(p.relay): p for p in self.pipelines if p.relay is not None}
            for pipeline in relays.values():
                # what a crash left in an outbox goes out now, not with the next batch
                tasks.append(
                    asyncio.create_task(pipeline.relay_pending(), name=f"{self.name}-relay")
                )

        async def stop_health() -> None:
            self.phase = "stopping"
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks.clear()
            for pipeline in self.pipelines:
                pipeline.close()
            self.health_path().unlink(missing_ok=True)

        async def close() -> None:
            await self.publisher.stop()
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            await self._close_probe_conn()
            if self.probes is not None:
                await self.probes.stop()
                self.probes = None
            metrics.forget(self)
            metrics.clear_samples(self.name)

        return FastStream(
            self.broker,
            on_startup=[prepare],
            after_startup=[start_health, *(on_started or [])],
            on_shutdown=[stop_health, *(on_stopping or [])],
            after_shutdown=[close],
            specification=AsyncAPI(
                title=f"finfocus-{self.name}",
                version=__version__,
                description=self.description,
            ),
        )
