"""The anomaly subscribers: priced-resources batch -> stored lines -> detection -> anomalies."""

from __future__ import annotations

import logging
from datetime import UTC

import orjson
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from finfocus.broker import (
    Envelope,
    consumer_options,
    envelope_dead_letter,
    envelopes,
    parse_envelopes,
    publish_dead_letters,
)
from finfocus.telemetry import log_fields, start_record_span, trace_headers
from schemas.anomaly import AnomalyFeedbackV1, AnomalyV1
from schemas.deadletter import DeadLetterV1
from schemas.pricing import PricedRecordV1
from schemas.topics import Topics, schema_headers
from services.anomaly.domain import CostLine
from services.anomaly.engine import Evaluator, Outcome, line_from_record
from services.anomaly.store import BAD_DATA, AnomalyStore

logger = logging.getLogger(__name__)

GROUP_ID = "finfocus-anomaly"
FEEDBACK_TOPIC = Topics.ANOMALY_FEEDBACK
FEEDBACK_GROUP_ID = "finfocus-anomaly-feedback"
SERVICE = "anomaly"
_SCHEMA = [(k, v.encode()) for k, v in schema_headers("Anomaly").items()]


def parse_batch(envs: list[Envelope]) -> tuple[list[tuple[CostLine, Envelope]], list]:
    """Priced records as cost lines; anything that does not validate becomes a dead letter."""
    good, letters = [], []
    for env in envs:
        try:
            good.append((line_from_record(PricedRecordV1.model_validate_json(env.value)), env))
        except (ValidationError, ValueError) as exc:
            letters.append(envelope_dead_letter(env, f"invalid PricedRecord: {exc}", service=SERVICE))
    return good, letters


async def publish_anomalies(runtime, outcomes: list[Outcome], headers: dict[str, dict[str, bytes]]) -> None:
    """Publish each anomaly in the trace of the record that caused it."""
    records = []
    for o in outcomes:
        carrier = headers.get(o.cause.record_id, {}) if o.cause else {}
        span = start_record_span(
            runtime.tracer, "anomaly.detect", carrier,
            **{"finfocus.anomaly_id": o.anomaly.anomaly_id, "finfocus.change": o.change},
        )
        try:
            key = "|".join(f"{k}={v}" for k, v in sorted(o.anomaly.dimension.items())).encode()
            value = orjson.dumps(o.anomaly.model_dump(mode="json"))
            records.append((key, value, trace_headers(span) + _SCHEMA))
        finally:
            span.end()
    if records:
        await runtime.publisher.publish(Topics.ANOMALIES, records)


def _traceparent(o: Outcome, headers: dict[str, dict[str, bytes]]) -> str | None:
    value = headers.get(o.cause.record_id, {}).get("traceparent") if o.cause else None
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


async def republish(runtime, store: AnomalyStore) -> None:
    """Publish anomalies whose earlier publish did not complete (at-least-once)."""
    pending = await store.unpublished()
    if not pending:
        return
    outcomes, headers = [], {}
    for body, traceparent in pending:
        anomaly = AnomalyV1.model_validate(body)
        cause = None
        if traceparent:
            headers[anomaly.anomaly_id] = {"traceparent": traceparent.encode()}
            cause = _Cause(anomaly.anomaly_id)
        outcomes.append(Outcome(anomaly, cause, "republished"))
    await publish_anomalies(runtime, outcomes, headers)
    await store.mark_published([o.anomaly.anomaly_id for o in outcomes])
    logger.info("anomalies re-published", extra=log_fields(count=len(outcomes)))


class _Cause:
    """Stands in for the causing line when only its trace context survives."""

    def __init__(self, record_id: str) -> None:
        self.record_id = record_id


def register_handlers(runtime, store: AnomalyStore, evaluator: Evaluator, notifier=None) -> None:
    """Subscribe the detection handler on `runtime.broker`."""
    settings = runtime.settings

    # documented in the AsyncAPI document; records are sent through runtime.publisher
    runtime.publishes(
        Topics.ANOMALIES, AnomalyV1,
        "Anomaly v1 when an anomaly is detected, updated (ongoing, acknowledged) or "
        "resolved; key = its dimension; traceparent of the record that caused it",
    )
    runtime.publishes(
        Topics.dlq(Topics.PRICED_RESOURCES), DeadLetterV1,
        "Records that are not a valid PricedRecord v1 or that the store refuses, with the reason",
    )

    @runtime.broker.subscriber(
        Topics.PRICED_RESOURCES,
        batch=True,
        title="priced-resources:PricedRecord",
        description="Batches of PricedRecord v1: stored per x_RecordId, then every touched series "
        "is re-evaluated by its monitors",
        max_records=getattr(settings, "anomaly_batch_max_records", 5000),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **consumer_options(settings, group_id=GROUP_ID),
    )
    async def detect_anomalies(message: KafkaMessage) -> None:
        await republish(runtime, store)
        parsed, letters = parse_batch(envelopes(message))
        headers = {line.record_id: env.headers for line, env in parsed}

        async def evaluate(items: list[tuple[CostLine, Envelope]]) -> list[Outcome]:
            async with store.transaction() as tx:
                outcomes = await evaluator.process(tx, [line for line, _ in items])
                await tx.mark_pending([(o.anomaly.anomaly_id, _traceparent(o, headers)) for o in outcomes])
                if notifier is not None and outcomes:
                    await notifier.enqueue(tx.conn, [o.anomaly.model_dump(mode="json") for o in outcomes], evaluator.clock())
            return outcomes

        try:
            outcomes = await evaluate(parsed)
        except BAD_DATA:
            # one record the database refuses must not block the batch: isolate it
            outcomes = []
            for item in parsed:
                try:
                    outcomes += await evaluate([item])
                except BAD_DATA as exc:
                    letters.append(envelope_dead_letter(item[1], f"cannot store record: {exc}", service=SERVICE))
        if letters:
            await publish_dead_letters(runtime.broker, letters)
        await publish_anomalies(runtime, outcomes, headers)
        await store.mark_published([o.anomaly.anomaly_id for o in outcomes])
        logger.debug("batch evaluated", extra=log_fields(lines=len(parsed), dead=len(letters), anomalies=len(outcomes)))

    @runtime.broker.subscriber(
        FEEDBACK_TOPIC, batch=True, title="anomaly-feedback:Feedback",
        description="Verdicts from `finfocus anomalies feedback` (yes, no, planned)",
        **consumer_options(settings, group_id=FEEDBACK_GROUP_ID),
    )
    async def record_feedback(message: KafkaMessage) -> None:
        outcomes, headers = [], {}
        parsed, letters = parse_envelopes(envelopes(message), AnomalyFeedbackV1, service=SERVICE, label="feedback")
        for fb, env in parsed:
            async with store.transaction() as tx:
                updated = await tx.acknowledge(fb.anomaly_id, fb.verdict, fb.note, fb.given_at.astimezone(UTC))
            if updated is None:
                letters.append(envelope_dead_letter(env, f"unknown anomaly {fb.anomaly_id}", service=SERVICE))
                continue
            outcomes.append(Outcome(AnomalyV1.model_validate(updated), None, "acknowledged"))
        if letters:
            await publish_dead_letters(runtime.broker, letters)
        await publish_anomalies(runtime, outcomes, headers)
        await store.mark_published([o.anomaly.anomaly_id for o in outcomes])
