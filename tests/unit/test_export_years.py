"""`finfocus export focus` writes a billing period for every year BillingRecord v1 accepts."""

from __future__ import annotations

import pytest

from schemas.ingest import BillingRecordV1
from services.ingest.cli.export import focus_row

ROW = {
    "ProviderName": "AWS",
    "BillingAccountId": "1",
    "ServiceName": "S3",
    "ChargeCategory": "Usage",
    "BillingCurrency": "USD",
    "BilledCost": "1",
}


@pytest.mark.parametrize(
    ("start", "period"),
    [
        ("0001-01-01T00:00:00Z", ("0001-01-01T00:00:00Z", "0001-02-01T00:00:00Z")),
        ("0999-12-05T00:00:00Z", ("0999-12-01T00:00:00Z", "1000-01-01T00:00:00Z")),
        ("9999-12-31T00:00:00Z", ("9999-12-01T00:00:00Z", "9999-12-31T23:59:59Z")),
    ],
)
def test_billing_period_of_the_first_and_last_years_the_contract_accepts(start, period):
    record = BillingRecordV1.model_validate(
        {**ROW, "ChargePeriodStart": start, "ChargePeriodEnd": start}
    )
    row = focus_row(record.model_dump(mode="json", exclude_none=True))
    assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == period
