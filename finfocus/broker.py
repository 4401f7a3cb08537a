"""Kafka broker factory, topic bootstrap and dead-lettering shared by every service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider

from finfocus.settings import FinFocusSettings
from schemas.deadletter import DeadLetterV1
from schemas.topics import Topics, schema_headers

logger = logging.getLogger(__name__)


def make_broker(
    settings: FinFocusSettings,
    tracer_provider: TracerProvider | None = None,
    *,
    description: str | None = None,
) -> KafkaBroker:
    """A FastStream Kafka broker with the telemetry middleware, connected lazily on start.

    The embedded broker supports no idempotent producer, so idempotence stays off; every
    consumer is idempotent instead (see `finfocus.db`).
    """
    middlewares = []
    if tracer_provider is not None:
        middlewares.append(KafkaTelemetryMiddleware(tracer_provider=tracer_provider))
    return KafkaBroker(
        settings.kafka,
        middlewares=middlewares,
        description=description,
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024,
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
    )


def consumer_options(settings: FinFocusSettings, *, group_id: str) -> dict:
    """Subscriber options shared by every service: a consumer group, earliest offsets, and
    the short session of the embedded profile (group joins take about half of it there)."""
    return {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        **settings.consumer_timeouts(),
    }


async def ensure_topics(bootstrap: str, partitions: int = 4, topics: list[str] | None = None) -> None:
    """Create the FinFocus topics that do not exist yet (existing ones are left as they are)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or Topics.all()) if t not in existing]
        if wanted:
            try:
                await admin.create_topics(
                    [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in wanted]
                )
            except TopicAlreadyExistsError:
                pass  # a concurrent bootstrap created them first
    finally:
        await admin.close()


def dead_letter(
    raw: bytes,
    error: str,
    *,
    service: str,
    source_topic: str,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
) -> DeadLetterV1:
    """The dead-letter record of one refused message: original bytes, reason and origin."""
    original, encoding = DeadLetterV1.encode_original(raw)
    return DeadLetterV1(
        original=original,
        original_encoding=encoding,
        original_key=key.decode("utf-8", "replace") if key else None,
        error=error[:4000],
        source_topic=source_topic,
        source_partition=partition,
        source_offset=offset,
        service=service,
        failed_at=datetime.now(UTC),
    )


async def publish_dead_letters(broker: KafkaBroker, letters: list[DeadLetterV1]) -> None:
    """Publish dead letters to `<source topic>.dlq`, one batch per source topic."""
    by_topic: dict[str, list[DeadLetterV1]] = {}
    for letter in letters:
        by_topic.setdefault(Topics.dlq(letter.source_topic), []).append(letter)
    for topic, items in by_topic.items():
        for item in items:
            logger.warning(
                "dead-lettered message", extra={"fields": {"topic": topic, "error": item.error}}
            )
        await broker.publish_batch(
            *[item.model_dump(mode="json") for item in items],
            topic=topic,
            headers=schema_headers("DeadLetter"),
        )
