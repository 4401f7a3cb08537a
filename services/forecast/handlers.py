"""Thin subscribers: priced records in, cost lines stored, a debounced refit requested."""

from __future__ import annotations

import logging
from datetime import UTC

from finfocus.service import ServiceRuntime
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
    """Subscribe the forecast service to `priced-resources` (on the runtime's consume pipeline)."""
    changed = _Changed(refitter)

    async def save(tx, lines: list[CostLine]) -> None:
        changed.count += await store.write_lines(tx, lines)

    runtime.consume(
        Topics.PRICED_RESOURCES,
        group=GROUP_ID,
        label="PricedRecord",
        decode=lambda env: cost_line(PricedRecordV1.model_validate_json(env.value)),
        work=save,
        after=changed.poke,
        description="Batches of PricedRecord v1: daily cost lines per record id (newest billing-scope "
        "version wins), then a debounced refit",
    )


def register_budget_handlers(runtime: ServiceRuntime, budgets, refitter) -> None:
    """Subscribe to `budget-commands`: budgets are stored, then refit and evaluated."""
    from schemas.budget import BUDGET_COMMANDS
    from services.forecast.budgets import budget_command_decoder, keys_for

    changed = _Changed(refitter)

    async def apply(tx, commands: list) -> None:
        for command, actor in commands:  # signed by a trusted issuer: the actor is audited
            changed.count += await budgets.apply(command, tx, actor=actor)

    runtime.consume(
        BUDGET_COMMANDS,
        group=f"{GROUP_ID}-budgets",
        label="BudgetCommand",
        decode=budget_command_decoder(lambda: keys_for(runtime.settings.home)),
        work=apply,
        after=changed.poke,
        description="Budget set/delete commands, applied unless a newer one already was",
    )


class _Changed:
    """Counts changed rows across a batch's transactions; pokes the refitter once committed."""

    def __init__(self, refitter) -> None:
        self.refitter = refitter
        self.count = 0

    def poke(self, _records) -> None:
        if self.count:
            self.count = 0
            self.refitter.poke()
