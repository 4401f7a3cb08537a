"""Thin subscribers: anomalies -> planned commands, priced-resources -> per-resource cost lines."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson
from opentelemetry import trace

from finfocus.broker import Envelope, OutgoingRecord
from finfocus.consume import Done
from finfocus.faults import NotArrivedYet
from finfocus.service import ServiceRuntime
from finfocus.signing import verify
from finfocus.telemetry import log_fields, start_record_span, trace_headers
from schemas.anomaly import AnomalyStatus, AnomalyV1
from schemas.pricing import PricedRecordV1
from schemas.remediation import RemediationCommandV1, ResourceMetricV1
from schemas.topics import Topics, schema_headers
from services.remediation import store
from services.remediation.config import RemediationSettings
from services.remediation.domain import Candidate, initial_status, plan_anomaly
from services.remediation.playbooks import load_playbooks
from services.remediation.trust import ANOMALY_ISSUERS, keys_for, signed_headers

logger = logging.getLogger(__name__)
SERVICE = "remediation"


def command_headers(span: trace.Span) -> list[tuple[str, bytes]]:
    return trace_headers(span) + [
        (k, v.encode()) for k, v in schema_headers("RemediationCommand").items()
    ]


async def publish_commands(
    runtime: ServiceRuntime, commands: list[RemediationCommandV1], span: trace.Span
) -> None:
    """Publish commands keyed by target resource id, then mark them published."""
    if not commands:
        return
    await runtime.publisher.publish(
        Topics.REMEDIATION_COMMANDS, signed_commands(runtime, commands, span)
    )
    async with store.transaction(runtime.pool) as conn:
        await store.mark_published(conn, [c.command_id for c in commands])


_REPORTED: set[str] = set()


def current_playbooks(settings: RemediationSettings):
    """The valid playbooks of the playbook directory, read again on each use (edits apply
    without a restart), with an admin's switches applied (playbook_commands.py); each invalid
    one is logged once and never runs."""
    from services.remediation.playbook_commands import switches_for

    playbooks, errors = load_playbooks(settings.playbooks_dir)
    for error in errors:
        if error not in _REPORTED:
            _REPORTED.add(error)
            logger.error("playbook refused", extra=log_fields(error=error))
    return switches_for(settings).apply(playbooks)


async def plan_one(
    conn: asyncpg.Connection, settings: RemediationSettings, anomaly: AnomalyV1, span: trace.Span
) -> list[RemediationCommandV1]:
    """Plan one anomaly inside the caller's transaction; the commands to publish."""
    if anomaly.status == AnomalyStatus.RESOLVED:
        # restated data removed the anomaly: what has not run yet must not run
        cancelled = await store.cancel_for_cause(
            conn, anomaly_id=anomaly.anomaly_id, reason="the anomaly was resolved"
        )
        await store.record_anomaly_commands(conn, anomaly.anomaly_id, [])
        span.set_attribute("finfocus.cancelled", len(cancelled))
        return []
    start = anomaly.window_start.date()
    end = max(anomaly.window_end.date(), start + timedelta(days=1))
    known = await store.resources_of_dimension(conn, anomaly.dimension, start, end)
    waited = (datetime.now(UTC) - anomaly.detected_at).total_seconds()
    if not known and waited < settings.remediation_resource_wait_seconds:
        raise NotArrivedYet(
            f"no priced resource of {anomaly.dimension} for {start}..{end} here yet"
        )
    candidates = [
        Candidate(
            resource_id=r["resource_id"],
            provider=r["provider"],
            account_id=r["sub_account_id"] or r["billing_account_id"],
            region=r["region_id"],
            resource_type=r["resource_type"],
            tags=r["tags"],
            daily_cost=r["daily_cost"],
            currency=r["currency"],
        )
        for r in known
    ]
    failures: list[str] = []
    planned = plan_anomaly(
        anomaly, current_playbooks(settings), candidates, datetime.now(UTC), failures
    )
    for failure in failures:  # that playbook gave nothing; the others and the notify still run
        logger.error(
            "planning failed for a playbook",
            extra=log_fields(anomaly_id=anomaly.anomaly_id, error=failure),
        )
    to_publish = await store.record_anomaly_commands(
        conn, anomaly.anomaly_id, [(c, initial_status(c)) for c in planned]
    )
    span.set_attribute("finfocus.commands", len(to_publish))
    return to_publish


def signed_commands(
    runtime: ServiceRuntime, commands: list[RemediationCommandV1], span: trace.Span
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """The outgoing records of `commands`: keyed by target resource id, signed by the planner."""
    headers, keys = command_headers(span), keys_for(runtime.settings.home)
    values = [(c.target.resource_id.encode(), c.model_dump_json().encode()) for c in commands]
    return [(k, v, signed_headers(keys, v, headers)) for k, v in values]


def cost_line(record: PricedRecordV1) -> tuple | None:
    """The stored row of a priced record, or None when it concerns no resource or has no cost."""
    if not record.ResourceId or record.BilledCost is None:
        return None
    return (
        record.x_RecordId,
        record.x_BillingScope,
        record.x_BillingScopeVersion,
        record.ProviderName,
        record.BillingAccountId,
        record.SubAccountId,
        record.ServiceName,
        record.RegionId,
        record.ResourceId,
        record.ResourceType,
        record.SkuId,
        record.ChargeDescription,
        record.ChargeCategory.value,
        record.ChargePeriodStart.astimezone(UTC).date(),
        record.BilledCost,
        record.BillingCurrency,
        record.ConsumedQuantity,
        record.ConsumedUnit,
        record.Tags or {},
    )


def register_handlers(
    runtime: ServiceRuntime, settings: RemediationSettings, on_costs=None
) -> None:
    """Subscribe the planner (anomalies) and the per-resource cost lines (priced-resources)."""
    keys = keys_for(settings.home)

    def trusted_anomaly(env: Envelope) -> tuple[AnomalyV1, Envelope]:
        # a forged anomaly naming any resource must never reach a playbook
        verify(keys, env.headers, env.topic, env.value, ANOMALY_ISSUERS)
        return AnomalyV1.model_validate_json(env.value), env

    async def plan(conn, items: list[tuple[AnomalyV1, Envelope]]) -> Done:
        outgoing: list[tuple[str, OutgoingRecord]] = []
        for anomaly, env in items:
            span = start_record_span(
                runtime.tracer,
                "remediation.plan",
                env.headers,
                **{"finfocus.anomaly_id": anomaly.anomaly_id},
            )
            with trace.use_span(span, end_on_exit=True):
                commands = await plan_one(conn, settings, anomaly, span)
                outgoing += [
                    (Topics.REMEDIATION_COMMANDS, r)
                    for r in signed_commands(runtime, commands, span)
                ]
        return Done(outgoing=outgoing)

    async def publish_and_mark(topic: str, records: list) -> None:
        # the commands of a redelivered anomaly come back until marked published
        await runtime.publisher.publish(topic, records)
        ids = [orjson.loads(value)["command_id"] for _, value, _ in records]
        async with store.transaction(runtime.pool) as conn:
            await store.mark_published(conn, ids)

    runtime.consume(
        Topics.ANOMALIES,
        group="finfocus-remediation",
        label="Anomaly v1",
        decode=trusted_anomaly,
        work=plan,
        publish=publish_and_mark,
        description="Anomaly v1 signed by anomaly or forecast: planned into remediation commands",
    )

    touched: set[str] = set()

    async def store_costs(conn, items: list[tuple | None]) -> None:
        rows = [r for r in items if r is not None]
        if rows:
            await store.store_cost_lines(conn, rows)
            touched.update(r[8] for r in rows)

    def costs_stored(_records) -> None:
        if touched and on_costs is not None:
            on_costs(set(touched))
        touched.clear()

    runtime.consume(
        Topics.PRICED_RESOURCES,
        group="finfocus-remediation-costs",
        label="PricedRecord v1",
        decode=lambda env: cost_line(PricedRecordV1.model_validate_json(env.value)),
        work=store_costs,
        after=costs_stored,
        description="PricedRecord v1: per-resource cost lines for savings and recommendations",
    )


def register_metrics_handler(
    runtime: ServiceRuntime, settings: RemediationSettings, on_metrics=None
) -> None:
    """Subscribe the per-resource utilisation metrics."""

    def metric_row(env: Envelope) -> tuple:
        metric = ResourceMetricV1.model_validate_json(env.value)
        return (
            metric.resource_id,
            date.fromisoformat(metric.date),
            metric.cpu_avg_pct,
            metric.cpu_max_pct,
            metric.cpu_p995_pct,
            metric.network_mb,
        )

    async def store_metrics(conn, rows: list[tuple]) -> None:
        await store.store_metrics(conn, list({(r[0], r[1]): r for r in rows}.values()))

    runtime.consume(
        Topics.RESOURCE_METRICS,
        group="finfocus-remediation-metrics",
        label="ResourceMetric v1",
        decode=metric_row,
        work=store_metrics,
        after=(lambda _records: on_metrics()) if on_metrics is not None else None,
        description="ResourceMetric v1: daily utilisation per resource, for rightsizing",
    )
