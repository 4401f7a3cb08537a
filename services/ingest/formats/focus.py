"""FOCUS 1.0 to 1.3 exports: already FOCUS, so only names and spellings need care."""

from __future__ import annotations

import polars as pl

from services.ingest.formats.common import extension_name

NAME = "focus"
#: columns whose presence identifies a FOCUS export
SIGNATURE = {"BilledCost", "ChargePeriodStart", "BillingAccountId", "ServiceName"}
#: pre-1.0 spellings still found in exports of the 1.0-preview era
RENAMED = {
    "AmortizedCost": "EffectiveCost",
    "UsageQuantity": "ConsumedQuantity",
    "UsageUnit": "ConsumedUnit",
    "Region": "RegionId",
}


def matches(columns: list[str]) -> bool:
    return set(columns) >= SIGNATURE


def to_focus(df: pl.DataFrame) -> pl.DataFrame:
    """Rename old spellings and carry non-FOCUS columns as `x_` extensions (`Id` -> `x_Id`)."""
    mapping = {}
    for column in df.columns:
        target = RENAMED.get(column, column)
        if target != column and target in df.columns:
            target = extension_name(column)
        mapping[column] = extension_name(target)
    return df.rename(mapping)
