"""PricedRecord v1: a BillingRecord after pricing, published on `priced-resources`."""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.common import RequiredText, Text, Timestamp
from schemas.ingest import BillingRecordV1

PRICE_SOURCE_PATTERN = r"^(billed|none|plugin:[a-z0-9][a-z0-9-]*|spec:.+)$"


class PricedRecordV1(BillingRecordV1):
    """A BillingRecord with its identity and its price source always set.

    `BilledCost` and `EffectiveCost` are set unless no price was found
    (`x_PriceSource == "none"`): an unpriced row stays visible instead of becoming zero.
    """

    x_RecordId: RequiredText = Field(description="Stable identity of the row")  # type: ignore[assignment]
    x_PriceSource: Text = Field(
        pattern=PRICE_SOURCE_PATTERN,
        description="'billed', 'plugin:<name>', 'spec:<file>' or 'none'",
    )
    x_PricedAt: Timestamp | None = Field(None, description="When pricing produced this record")

    @model_validator(mode="after")
    def _priced_unless_none(self) -> PricedRecordV1:
        if self.x_PriceSource != "none" and self.BilledCost is None:
            raise ValueError("a priced record needs BilledCost unless x_PriceSource is 'none'")
        return self
