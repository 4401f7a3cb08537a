"""The anomaly subscribers: priced-resources batch -> stored lines -> detection -> anomalies."""

from __future__ import annotations

import logging
from datetime import UTC
from functools import partial

import orjson

from finfocus.consume import Done
from finfocus.telemetry import start_record_span, trace_headers
from schemas.anomaly import AnomalyFeedbackV1, AnomalyV1
from schemas.deadletter import DeadLetterV1
from schemas.pricing import PricedRecordV1
from schemas.topics import Topics, schema_headers
from services.anomaly.domain import CostLine
from services.anomaly.engine import Evaluator, Outcome, line_from_record
from services.anomaly.store import BAD_DATA, AnomalyStore, Tx
from services.anomaly.trust import feedback_decoder, keys_for, signed_anomalies

logger = logging.getLogger(__name__)

GROUP_ID = "finfocus-anomaly"
FEEDBACK_TOPIC = Topics.ANOMALY_FEEDBACK
FEEDBACK_GROUP_ID = "finfocus-anomaly-feedback"
SERVICE = "anomaly"
_SCHEMA = [(k, v.encode()) for k, v in schema_headers("Anomaly").items()]


async def publish_anomalies(
    runtime, outcomes: list[Outcome], carriers: dict[str, dict[str, bytes]]
) -> None:
    """Publish each anomaly in the trace of the record that caused it (`carriers`: anomaly id ->
    the trace headers of its cause, kept from detection in the outbox)."""
    records = []
    for o in outcomes:
        carrier = carriers.get(o.anomaly.anomaly_id, {})
        span = start_record_span(
            runtime.tracer,
            "anomaly.detect",
            carrier,
            **{"finfocus.anomaly_id": o.anomaly.anomaly_id, "finfocus.change": o.change},
        )
        try:
            key = "|".join(f"{k}={v}" for k, v in sorted(o.anomaly.dimension.items())).encode()
            value = orjson.dumps(o.anomaly.model_dump(mode="json"))
            records.append((key, value, trace_headers(span) + _SCHEMA))
        finally:
            span.end()
    if records:  # signed: remediation acts only on anomalies this service (or forecast) signed
        await runtime.publisher.publish(
            Topics.ANOMALIES, signed_anomalies(keys_for(runtime.settings.home), records)
        )


async def _undecoded(message) -> list[bytes]:
    """Keep the batch as bytes: FastStream's default decoder JSON-decodes every record into a
    dict and caches it on the message for the whole batch (about 5 KB a record: 109 MB of a
    20,000-record batch, the largest allocation of this process); `decode` parses each record
    once, straight into its model."""
    return message.body


async def _lean_batch(message, original_parser):
    """FastStream's batch parser without its per-record header dicts (copied again by the
    telemetry middleware for baggage): each record's trace is read from its own headers, kept
    on the envelope, when an anomaly is published."""
    parsed = await original_parser(message)
    parsed.batch_headers = []
    return parsed


def _traceparent(o: Outcome, headers: dict[str, dict[str, bytes]]) -> str | None:
    value = headers.get(o.cause.record_id, {}).get("traceparent") if o.cause else None
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


async def republish(runtime, store: AnomalyStore, older_than_s: float | None = None) -> int:
    """The outbox relay: publish the anomalies saved but not yet on the topic, then mark them.

    Anomalies are the one output here that is not a pure function of the input (a redelivered
    line changes nothing, so detection would not emit again): they are saved `pending_publish`
    in the batch's transaction and relayed after it committed, before the offsets are."""
    total = 0
    while True:
        pending = await store.unpublished(older_than_s)
        if not pending:
            return total
        outcomes: list[Outcome] = []
        carriers: dict[str, dict[str, bytes]] = {}
        for body, traceparent in pending:
            anomaly = AnomalyV1.model_validate(body)
            if traceparent:
                carriers[anomaly.anomaly_id] = {"traceparent": traceparent.encode()}
            outcomes.append(Outcome(anomaly, None, "republished"))
        await publish_anomalies(runtime, outcomes, carriers)
        await store.mark_published([o.anomaly.anomaly_id for o in outcomes])
        total += len(outcomes)
        if len(pending) < 1000:
            return total


def register_handlers(runtime, store: AnomalyStore, evaluator: Evaluator, notifier=None) -> None:
    """Subscribe the detection handler on `runtime.broker`."""
    settings = runtime.settings

    # documented in the AsyncAPI document; records are sent through runtime.publisher
    runtime.publishes(
        Topics.ANOMALIES,
        AnomalyV1,
        "Anomaly v1 when an anomaly is detected, updated (ongoing, acknowledged) or "
        "resolved; key = its dimension; traceparent of the record that caused it",
    )
    runtime.publishes(
        Topics.dlq(Topics.PRICED_RESOURCES),
        DeadLetterV1,
        "Records that are not a valid PricedRecord v1 or that the store refuses, with the reason",
    )

    async def detect(conn, items: list[tuple[CostLine, dict]]) -> None:
        tx = Tx(conn)
        headers = {line.record_id: h for line, h in items}
        outcomes = await evaluator.process(tx, [line for line, _ in items])
        await tx.mark_pending([(o.anomaly.anomaly_id, _traceparent(o, headers)) for o in outcomes])
        if notifier is not None and outcomes:
            await notifier.enqueue(
                conn, [o.anomaly.model_dump(mode="json") for o in outcomes], evaluator.clock()
            )

    relay = partial(republish, runtime, store)
    runtime.consume(
        Topics.PRICED_RESOURCES,
        group=GROUP_ID,
        label="PricedRecord",
        decode=lambda env: (
            line_from_record(PricedRecordV1.model_validate_json(env.value)),
            env.headers,
        ),
        work=detect,
        relay=relay,
        data_errors=BAD_DATA,
        title="priced-resources:PricedRecord",
        description="Batches of PricedRecord v1: stored per x_RecordId, then every touched series "
        "is re-evaluated by its monitors",
        max_records=getattr(settings, "anomaly_batch_max_records", 5000),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        parser=_lean_batch,
        decoder=_undecoded,
    )

    async def acknowledge(conn, feedback: list[tuple[AnomalyFeedbackV1, str]]) -> Done:
        tx, refused = Tx(conn), {}
        for i, (fb, actor) in enumerate(feedback):  # signed by a trusted issuer, audited as actor
            if (
                await tx.acknowledge(
                    fb.anomaly_id, fb.verdict, fb.note, fb.given_at.astimezone(UTC), actor
                )
                is None
            ):
                refused[i] = f"unknown anomaly {fb.anomaly_id}"
            else:
                await tx.mark_pending([(fb.anomaly_id, None)])
        return Done(refused=refused)

    runtime.consume(
        FEEDBACK_TOPIC,
        group=FEEDBACK_GROUP_ID,
        label="feedback",
        decode=feedback_decoder(lambda: keys_for(runtime.settings.home)),
        work=acknowledge,
        relay=relay,
        title="anomaly-feedback:Feedback",
        description="Verdicts from `finfocus anomalies feedback` (yes, no, planned)",
    )
