"""BillingRecord v1: one FOCUS row of cost and usage, published on `raw-billing`.

Produced by the ingest service and by any upstream system. Column names are FOCUS 1.2
(PascalCase); extension columns start with `x_`. Any other unknown column is rejected, so a
misspelt column is an error at the edge instead of a silently missing value.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import (
    CurrencyCode,
    Int64,
    Money,
    Quantity,
    RequiredText,
    Text,
    Timestamp,
    json_value_problem,
    text_problem,
)


class ChargeCategoryName(StrEnum):
    """FOCUS ChargeCategory: the highest-level classification of a charge."""

    USAGE = "Usage"
    PURCHASE = "Purchase"
    TAX = "Tax"
    CREDIT = "Credit"
    ADJUSTMENT = "Adjustment"


#: FOCUS columns (1.0 to 1.3) accepted besides the ones declared as fields below.
OTHER_FOCUS_COLUMNS = frozenset(
    """
    AllocatedMethodId AllocatedMethodDetails AllocatedResourceId AllocatedResourceName
    AllocatedTags CapacityReservationId CapacityReservationStatus CommitmentDiscountCategory
    CommitmentDiscountId CommitmentDiscountName CommitmentDiscountQuantity
    CommitmentDiscountStatus CommitmentDiscountType CommitmentDiscountUnit ContractApplied
    HostProviderName InvoiceId InvoiceIssuerName PricingCategory PricingCurrency
    PricingCurrencyContractedUnitPrice PricingCurrencyEffectiveCost PricingCurrencyListUnitPrice
    ProviderName PublisherName ServiceProviderName ServiceSubcategory SkuMeter SkuPriceDetails
    SkuPriceId AvailabilityZone BillingAccountType SubAccountType
    """.split()  # noqa: SIM905 - a word list reads better as text
)

#: extension columns that describe how a row travelled, not what it costs: excluded from its id
TRANSPORT_COLUMNS = frozenset(
    {"x_RecordId", "x_BillingScopeVersion", "x_ImportJobId", "x_PriceSource", "x_PricedAt"}
)

MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")


class BillingRecordV1(BaseModel):
    """One row of cost and usage with FOCUS column names."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, str_strip_whitespace=True, frozen=False
    )

    ProviderName: RequiredText = Field(description="Provider that makes the resources available")
    BillingAccountId: RequiredText = Field(description="Account the invoice is issued to")
    BillingAccountName: Text | None = Field(None, description="Display name of the billing account")
    SubAccountId: Text | None = Field(
        None, description="Account/project/subscription of the resource"
    )
    SubAccountName: Text | None = Field(None, description="Display name of the sub account")
    ChargePeriodStart: Timestamp = Field(
        description="Inclusive start of the charge period (RFC 3339)"
    )
    ChargePeriodEnd: Timestamp = Field(description="Exclusive end of the charge period (RFC 3339)")
    BillingPeriodStart: Timestamp | None = Field(
        None, description="Inclusive start of the billing period"
    )
    BillingPeriodEnd: Timestamp | None = Field(
        None, description="Exclusive end of the billing period"
    )
    BillingCurrency: CurrencyCode = Field(description="ISO 4217 currency of the billed costs")
    ServiceName: RequiredText = Field(description="Offering purchased from the provider")
    ServiceCategory: Text | None = Field(None, description="FOCUS service category, e.g. Compute")
    ChargeCategory: ChargeCategoryName = Field(
        description="Usage, Purchase, Tax, Credit or Adjustment"
    )
    ChargeClass: Text | None = Field(
        None, description="'Correction' for corrections of past periods"
    )
    ChargeDescription: Text | None = Field(None, description="Self-contained summary of the charge")
    ChargeFrequency: Text | None = Field(None, description="One-Time, Recurring or Usage-Based")
    BilledCost: Money | None = Field(None, description="Cost invoiced (decimal string)")
    EffectiveCost: Money | None = Field(None, description="Amortised cost after discounts")
    ListCost: Money | None = Field(None, description="Cost at public list prices")
    ContractedCost: Money | None = Field(None, description="Cost at negotiated prices")
    ListUnitPrice: Money | None = Field(None, description="Public list price per pricing unit")
    ContractedUnitPrice: Money | None = Field(None, description="Negotiated price per pricing unit")
    ConsumedQuantity: Quantity | None = Field(None, description="Volume of the resource used")
    ConsumedUnit: Text | None = Field(None, description="Unit of ConsumedQuantity, e.g. Hours")
    PricingQuantity: Quantity | None = Field(None, description="Volume priced, in PricingUnit")
    PricingUnit: Text | None = Field(None, description="Unit the price is quoted in")
    ResourceId: Text | None = Field(None, description="Provider-assigned resource identifier")
    ResourceName: Text | None = Field(None, description="Display name of the resource")
    ResourceType: Text | None = Field(None, description="Kind of resource, e.g. an instance type")
    RegionId: Text | None = Field(None, description="Provider region id, e.g. us-east-1")
    RegionName: Text | None = Field(None, description="Display name of the region")
    SkuId: Text | None = Field(None, description="Provider SKU of the charge")
    Tags: dict[Text, Text] | None = Field(None, description="Resource tags, string keys and values")
    x_RecordId: Text | None = Field(
        None,
        description="Stable identity of the row; derived from its content when absent. Scoped "
        "to (ProviderName, BillingAccountId): a record whose id is already stored under another "
        "provider or billing account is dead-lettered, never replaces that account's line",
    )
    x_BillingScope: Text | None = Field(
        None,
        description="Set by imports: 'provider:billing-account:YYYY-MM'; a newer version of a "
        "scope supersedes every older row of that scope (restated bills). Only ingest may set "
        "it: on raw-billing a record carrying it without ingest's signature is dead-lettered",
    )
    x_BillingScopeVersion: Int64 | None = Field(
        None,
        description="Version of x_BillingScope this row belongs to (larger is newer); set "
        "by ingest only, like x_BillingScope",
    )
    x_ImportJobId: Text | None = Field(None, description="Import job that published the row")

    @model_validator(mode="after")
    def _reject_unknown_columns(self) -> BillingRecordV1:
        # Checked on the extras pydantic already collected: a "before" validator would make
        # pydantic build a Python dict of every JSON record first (a third of parse time).
        extra = self.__pydantic_extra__
        if extra:
            unknown = [k for k in extra if k not in OTHER_FOCUS_COLUMNS and not k.startswith("x_")]
            if unknown:
                raise ValueError(f"unknown column(s) {sorted(unknown)}: not FOCUS and not x_*")
            for key, value in extra.items():
                problem = text_problem(key) or json_value_problem(value)
                if problem:
                    raise ValueError(f"{key}: {problem}")
        return self

    @model_validator(mode="after")
    def _coherent(self) -> BillingRecordV1:
        if self.ChargePeriodEnd < self.ChargePeriodStart:
            raise ValueError("ChargePeriodEnd is before ChargePeriodStart")
        if self.BilledCost is None:
            if self.ConsumedQuantity is None or not self.ConsumedUnit:
                raise ValueError(
                    "BilledCost is missing and the row has no usage to price "
                    "(ConsumedQuantity and ConsumedUnit)"
                )
            if not (self.SkuId or self.ResourceType):
                raise ValueError(
                    "BilledCost is missing and the row has neither SkuId nor ResourceType"
                )
        return self

    def partition_key(self) -> bytes:
        """Kafka key: `ProviderName:SubAccountId` (or BillingAccountId)."""
        return f"{self.ProviderName}:{self.SubAccountId or self.BillingAccountId}".encode()

    def with_record_id(self) -> BillingRecordV1:
        """This record with `x_RecordId` set (derived when the producer did not set it)."""
        if not self.x_RecordId:
            self.x_RecordId = derive_record_id(self.model_dump(mode="json", exclude_none=True))
        return self


def derive_record_id(row: dict[str, Any], occurrence: int = 0) -> str:
    """Deterministic id of a row from its content: the same row always gets the same id.

    `occurrence` separates rows that are identical in every column within one file (the
    n-th repeat gets n), so genuine duplicates in a bill are not collapsed into one.
    """
    content = {k: v for k, v in row.items() if k not in TRANSPORT_COLUMNS and v is not None}
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str))
    if occurrence:
        digest.update(f"#{occurrence}".encode())
    return digest.hexdigest()[:32]
