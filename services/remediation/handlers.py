"""Thin subscribers: anomalies -> planned commands, priced-resources -> per-resource cost lines."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import asyncpg
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace
from pydantic import ValidationError

from finfocus.broker import (
    consumer_options,
    envelope_dead_letter,
    envelopes,
    parse_envelopes,
    publish_dead_letters,
)
from finfocus.service import ServiceRuntime
from finfocus.telemetry import log_fields, start_record_span, trace_headers
from schemas.anomaly import AnomalyStatus, AnomalyV1
from schemas.pricing import PricedRecordV1
from schemas.remediation import RemediationCommandV1, ResourceMetricV1
from schemas.topics import Topics, schema_headers
from services.remediation import store
from services.remediation.config import RemediationSettings
from services.remediation.domain import Candidate, initial_status, plan_anomaly
from services.remediation.playbooks import load_playbooks
from services.remediation.trust import keys_for, signed_headers, trusted_anomalies

logger = logging.getLogger(__name__)
SERVICE = "remediation"
TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def command_headers(span: trace.Span) -> list[tuple[str, bytes]]:
    return trace_headers(span) + [(k, v.encode()) for k, v in schema_headers("RemediationCommand").items()]


async def publish_commands(runtime: ServiceRuntime, commands: list[RemediationCommandV1],
                           span: trace.Span) -> None:
    """Publish commands keyed by target resource id, then mark them published."""
    if not commands:
        return
    headers, keys = command_headers(span), keys_for(runtime.settings.home)
    values = [(c.target.resource_id.encode(), c.model_dump_json().encode()) for c in commands]
    await runtime.publisher.publish(
        Topics.REMEDIATION_COMMANDS, [(k, v, signed_headers(keys, v, headers)) for k, v in values])
    async with store.transaction(runtime.pool) as conn:
        await store.mark_published(conn, [c.command_id for c in commands])


_REPORTED: set[str] = set()


def current_playbooks(settings: RemediationSettings):
    """The valid playbooks of the playbook directory, read again on each use (edits apply
    without a restart); each invalid one is logged once and never runs."""
    playbooks, errors = load_playbooks(settings.playbooks_dir)
    for error in errors:
        if error not in _REPORTED:
            _REPORTED.add(error)
            logger.error("playbook refused", extra=log_fields(error=error))
    return playbooks


async def plan_one(runtime: ServiceRuntime, settings: RemediationSettings, anomaly: AnomalyV1,
                   span: trace.Span) -> None:
    if anomaly.status == AnomalyStatus.RESOLVED:
        # restated data removed the anomaly: what has not run yet must not run
        async with store.transaction(runtime.pool) as conn:
            cancelled = await store.cancel_for_cause(conn, anomaly_id=anomaly.anomaly_id,
                                                     reason="the anomaly was resolved")
            await store.record_anomaly_commands(conn, anomaly.anomaly_id, [])
        span.set_attribute("finfocus.cancelled", len(cancelled))
        return
    start = anomaly.window_start.date()
    end = max(anomaly.window_end.date(), start + timedelta(days=1))
    async with store.transaction(runtime.pool) as conn:
        known = await store.resources_of_dimension(conn, anomaly.dimension, start, end)
        candidates = [
            Candidate(resource_id=r["resource_id"], provider=r["provider"],
                      account_id=r["sub_account_id"] or r["billing_account_id"], region=r["region_id"],
                      resource_type=r["resource_type"], tags=r["tags"], daily_cost=r["daily_cost"],
                      currency=r["currency"])
            for r in known
        ]
        planned = plan_anomaly(anomaly, current_playbooks(settings), candidates, datetime.now(UTC))
        to_publish = await store.record_anomaly_commands(
            conn, anomaly.anomaly_id, [(c, initial_status(c)) for c in planned])
    span.set_attribute("finfocus.commands", len(to_publish))
    await publish_commands(runtime, to_publish, span)


def cost_line(record: PricedRecordV1) -> tuple | None:
    """The stored row of a priced record, or None when it concerns no resource or has no cost."""
    if not record.ResourceId or record.BilledCost is None:
        return None
    return (
        record.x_RecordId, record.x_BillingScope, record.x_BillingScopeVersion, record.ProviderName,
        record.BillingAccountId, record.SubAccountId, record.ServiceName, record.RegionId,
        record.ResourceId, record.ResourceType, record.SkuId, record.ChargeDescription,
        record.ChargeCategory.value, record.ChargePeriodStart.astimezone(UTC).date(), record.BilledCost,
        record.BillingCurrency, record.ConsumedQuantity, record.ConsumedUnit, record.Tags or {},
    )


def register_handlers(runtime: ServiceRuntime, settings: RemediationSettings, on_costs=None) -> None:
    broker = runtime.broker

    @broker.subscriber(Topics.ANOMALIES, batch=True,
                       **consumer_options(settings, group_id="finfocus-remediation"))
    async def on_anomalies(message: KafkaMessage) -> None:
        signed, untrusted = trusted_anomalies(keys_for(settings.home), envelopes(message), service=SERVICE)
        parsed, letters = parse_envelopes(signed, AnomalyV1, service=SERVICE, label="Anomaly v1")
        letters += untrusted
        for anomaly, env in parsed:
            span = start_record_span(runtime.tracer, "remediation.plan", env.headers,
                                     **{"finfocus.anomaly_id": anomaly.anomaly_id})
            with trace.use_span(span, end_on_exit=True):
                try:
                    await plan_one(runtime, settings, anomaly, span)
                except TRANSIENT:
                    raise  # the database or broker is away: let the batch be redelivered
                except Exception as exc:  # a bug or data we cannot plan: park it, keep flowing
                    logger.exception("planning failed")
                    letters.append(envelope_dead_letter(env, f"planning failed: {exc!r}", service=SERVICE))
        if letters:
            await publish_dead_letters(broker, letters)

    @broker.subscriber(Topics.PRICED_RESOURCES, batch=True,
                       **consumer_options(settings, group_id="finfocus-remediation-costs"))
    async def on_priced(message: KafkaMessage) -> None:
        rows, sources = [], []
        parsed, letters = parse_envelopes(envelopes(message), PricedRecordV1, service=SERVICE,
                                          label="PricedRecord v1")
        for record, env in parsed:
            row = cost_line(record)
            if row is not None:
                rows.append(row)
                sources.append(env)
        if rows:
            try:
                async with store.transaction(runtime.pool) as conn:
                    await store.store_cost_lines(conn, rows)
            except TRANSIENT:
                raise
            except Exception:  # one row the database refuses: store the others, park that one
                for row, env in zip(rows, sources, strict=True):
                    try:
                        async with store.transaction(runtime.pool) as conn:
                            await store.store_cost_lines(conn, [row])
                    except TRANSIENT:
                        raise
                    except Exception as exc:
                        letters.append(envelope_dead_letter(env, f"cannot store cost line: {exc!r}",
                                                            service=SERVICE))
            if on_costs is not None:
                on_costs({r[8] for r in rows})
        if letters:
            await publish_dead_letters(broker, letters)


def register_metrics_handler(runtime: ServiceRuntime, settings: RemediationSettings, on_metrics=None) -> None:
    @runtime.broker.subscriber(Topics.RESOURCE_METRICS, batch=True,
                               **consumer_options(settings, group_id="finfocus-remediation-metrics"))
    async def on_resource_metrics(message: KafkaMessage) -> None:
        letters, rows = [], []
        for env in envelopes(message):
            try:
                metric = ResourceMetricV1.model_validate_json(env.value)
                day = date.fromisoformat(metric.date)
            except (ValidationError, ValueError) as exc:
                letters.append(envelope_dead_letter(env, f"invalid ResourceMetric v1: {exc}", service=SERVICE))
                continue
            rows.append((metric.resource_id, day, metric.cpu_avg_pct, metric.cpu_max_pct,
                         metric.cpu_p995_pct, metric.network_mb))
        if rows:
            async with store.transaction(runtime.pool) as conn:
                await store.store_metrics(conn, list({(r[0], r[1]): r for r in rows}.values()))
            if on_metrics is not None:
                on_metrics()
        if letters:
            await publish_dead_letters(runtime.broker, letters)
