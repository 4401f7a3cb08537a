"""Ingest refuses what BillingRecord v1 refuses: a row it publishes is never one pricing then
dead-letters after the import counted it (text too long, money with too many decimals,
timestamps outside years 1 to 9999 in UTC)."""

from __future__ import annotations

import polars as pl
import pytest
from pydantic import ValidationError

from schemas.ingest import BillingRecordV1
from services.ingest.formats.common import ERROR, finish

BASE = {
    "ProviderName": "AWS",
    "BillingAccountId": "1",
    "ServiceName": "S",
    "ChargeCategory": "Usage",
    "BillingCurrency": "USD",
    "ChargePeriodStart": "2024-09-01T00:00:00Z",
    "ChargePeriodEnd": "2024-09-01T01:00:00Z",
    "BilledCost": "1",
    "ResourceName": "r",
}


@pytest.mark.parametrize(
    "overrides",
    [
        {"ResourceName": "x" * 8193},
        {"BilledCost": "0." + "0" * 24 + "1"},
        {"ChargePeriodStart": "0001-01-01T00:00:00+05:00"},
    ],
)
def test_a_row_the_contract_refuses_is_refused_by_ingest(overrides):
    row = {**BASE, **overrides}
    with pytest.raises(ValidationError):
        BillingRecordV1.model_validate(row)
    out = finish(pl.DataFrame([BASE, row]))
    assert out.get_column(ERROR).to_list()[0] is None
    assert out.get_column(ERROR).to_list()[1]


def test_rows_at_the_bounds_pass_both():
    row = {**BASE, "ResourceName": "é" * 8192, "BilledCost": "0." + "0" * 23 + "1"}
    BillingRecordV1.model_validate(row)
    assert finish(pl.DataFrame([row])).get_column(ERROR).to_list() == [None]
