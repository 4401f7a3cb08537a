"""Thin subscribers: priced records in, cost lines stored, a debounced refit requested."""

from __future__ import annotations

import logging
from datetime import UTC

from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from finfocus.broker import consumer_options, envelope_dead_letter, envelopes, publish_dead_letters
from finfocus.service import ServiceRuntime
from finfocus.telemetry import start_record_span
from schemas.pricing import PricedRecordV1
from schemas.topics import Topics
from services.forecast.domain import CostLine

logger = logging.getLogger(__name__)
GROUP_ID = "finfocus-forecast"


def cost_line(record: PricedRecordV1) -> CostLine:
    """The part of a priced record a forecast needs; unpriced rows carry no cost."""
    priced = record.x_PriceSource != "none" and record.BilledCost is not None
    return CostLine(
        record_id=record.x_RecordId,
        provider=record.ProviderName,
        account=record.SubAccountId or record.BillingAccountId,
        service=record.ServiceName,
        currency=record.BillingCurrency,
        day=record.ChargePeriodStart.astimezone(UTC).date(),
        cost=record.BilledCost if priced else None,
        region=record.RegionId,
        resource=record.ResourceId,
        type=record.ResourceType,
        charge_frequency=record.ChargeFrequency,
        billing_scope=record.x_BillingScope,
        scope_version=record.x_BillingScopeVersion,
        tags=dict(record.Tags or {}),
    )


def register_handlers(runtime: ServiceRuntime, store, refitter) -> None:
    """Subscribe the forecast service to `priced-resources`."""

    @runtime.broker.subscriber(
        Topics.PRICED_RESOURCES,
        batch=True,
        **consumer_options(runtime.settings, group_id=GROUP_ID),
    )
    async def on_priced(message: KafkaMessage) -> None:
        lines, letters = [], []
        for env in envelopes(message):
            with start_record_span(runtime.tracer, "forecast.store", env.headers):
                try:
                    lines.append(cost_line(PricedRecordV1.model_validate_json(env.value)))
                except (ValidationError, ValueError) as exc:
                    letters.append(envelope_dead_letter(env, f"invalid PricedRecord: {exc}", service="forecast"))
        changed = await store.save_lines(lines)
        if letters:
            await publish_dead_letters(runtime.broker, letters)
        if changed:
            refitter.poke()


def register_budget_handlers(runtime: ServiceRuntime, budgets, refitter) -> None:
    """Subscribe to `budget-commands`: budgets are stored, then refit and evaluated."""
    from schemas.budget import BUDGET_COMMANDS, BudgetCommandV1

    @runtime.broker.subscriber(
        BUDGET_COMMANDS,
        batch=True,
        **consumer_options(runtime.settings, group_id=f"{GROUP_ID}-budgets"),
    )
    async def on_budget_command(message: KafkaMessage) -> None:
        letters, changed = [], False
        for env in envelopes(message):
            with start_record_span(runtime.tracer, "forecast.budget_command", env.headers):
                try:
                    command = BudgetCommandV1.model_validate_json(env.value)
                except (ValidationError, ValueError) as exc:
                    letters.append(envelope_dead_letter(env, f"invalid BudgetCommand: {exc}", service="forecast"))
                    continue
                changed = await budgets.apply(command) or changed
        if letters:
            await publish_dead_letters(runtime.broker, letters)
        if changed:
            refitter.poke()
