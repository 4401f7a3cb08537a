"""BudgetCommand v1: set or delete a budget, published on `budget-commands` by the CLI.

The forecast service owns budgets; the command line never writes to its schema, it sends
these commands and reads `forecast.v_budgets`.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.common import CurrencyCode, Money, Text, Timestamp

#: topic of budget commands (consumed by the forecast service)
BUDGET_COMMANDS = "budget-commands"

SCOPE_KEYS = ("provider", "account", "service", "region", "resource", "type")


class BudgetPeriod(StrEnum):
    """The period a budget's amount applies to."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


class ThresholdKind(StrEnum):
    """What a threshold compares: spend so far, or spend projected to the period's end."""

    ACTUAL = "actual"
    FORECAST = "forecast"


class BudgetThresholdV1(BaseModel):
    """Alert when `kind` spend reaches `percent` of the budget amount."""

    model_config = ConfigDict(extra="forbid")

    kind: ThresholdKind = Field(description="actual or forecast")
    percent: Money = Field(gt=Decimal(0), le=Decimal(1000), description="Percent of the amount")


class BudgetCommandV1(BaseModel):
    """Create, replace or delete one budget by name."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(pattern="^(set|delete)$", description="set (create or replace) or delete")
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Budget name",
    )
    amount: Money | None = Field(None, gt=Decimal(0), description="Budget amount per period (set)")
    currency: CurrencyCode | None = Field(None, description="ISO 4217 currency of the amount (set)")
    period: BudgetPeriod = Field(BudgetPeriod.MONTHLY, description="monthly or quarterly")
    scope: dict[Text, Text] = Field(
        default_factory=dict,
        description="Filter of the spend counted: provider, account, service, region, resource, "
        "type or tag:KEY -> value; empty for all spend",
    )
    thresholds: list[BudgetThresholdV1] = Field(
        default_factory=list, description="Alert thresholds on actual and forecast spend"
    )
    issued_at: Timestamp = Field(description="When the command was issued")
    actor: Text | None = Field(
        None,
        max_length=200,
        description="Who issued it, as the signing issuer "
        "authenticated them (e.g. user:alice); audited as <issuer>:<actor>",
    )

    @field_validator("scope")
    @classmethod
    def _known_keys(cls, scope: dict[str, str]) -> dict[str, str]:
        for key in scope:
            if key not in SCOPE_KEYS and not (key.startswith("tag:") and len(key) > 4):
                raise ValueError(
                    f"unknown scope key {key!r}: use {', '.join(SCOPE_KEYS)} or tag:KEY"
                )
        return scope

    def model_post_init(self, _context: object) -> None:
        if self.action == "set" and (self.amount is None or self.currency is None):
            raise ValueError("a set command needs amount and currency")
