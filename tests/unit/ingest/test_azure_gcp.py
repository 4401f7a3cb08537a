"""Azure cost details (EA actual, MCA amortised) and GCP billing export (JSON lines, Parquet)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from schemas.ingest import BillingRecordV1
from services.ingest.formats import detect
from services.ingest.reader import Source
from tests.unit.ingest.test_focus_normalisation import build

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"


def rows(name: str, fmt: str, total: str, currency: str) -> list[dict]:
    out, rejected, tally = build(FIXTURES / name, fmt)
    assert not rejected, [r.reason for r in rejected]
    assert tally.totals == {currency: Decimal(total)}
    parsed = [orjson.loads(r.value) for r in out]
    for row in parsed:
        BillingRecordV1.model_validate(row)
    return parsed


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("azure_ea_actual.csv", "azure"),
        ("azure_mca_amortized.csv", "azure"),
        ("gcp_billing_export.jsonl", "gcp"),
        ("gcp_billing_export.parquet", "gcp"),
    ],
)
def test_provider_exports_are_detected(name, fmt):
    assert detect(Source(FIXTURES / name).header()) == fmt


def test_azure_ea_actual_cost_maps_charge_types_days_and_brace_less_tags():
    got = rows("azure_ea_actual.csv", "azure", "1215.708", "EUR")
    usage, storage, covered, purchase, refund, tax = got
    assert usage["ProviderName"] == "Microsoft" and usage["BillingAccountId"] == "0012345"
    assert (usage["ChargePeriodStart"], usage["ChargePeriodEnd"]) == (
        "2024-09-01T00:00:00Z",
        "2024-09-02T00:00:00Z",
    )
    assert usage["BillingPeriodEnd"] == "2024-10-01T00:00:00Z"  # inclusive 09/30 -> exclusive
    assert usage["Tags"] == {"env": "prod", "team": "web"} and usage["RegionId"] == "eastus"
    assert Decimal(usage["ListCost"]) == Decimal("4.608")
    assert (covered["CommitmentDiscountStatus"], covered["CommitmentDiscountType"]) == (
        "Used",
        "Reservation",
    )
    assert (
        purchase["ChargeCategory"],
        Decimal(purchase["BilledCost"]),
        Decimal(purchase["EffectiveCost"]),
    ) == ("Purchase", Decimal(1200), Decimal(0))
    assert (refund["ChargeCategory"], refund["ChargeClass"]) == ("Credit", "Correction")
    assert tax["ChargeCategory"] == "Tax"
    assert usage["x_BillingScope"] == "Microsoft:0012345:2024-09"


def test_azure_mca_amortised_cost_keeps_billed_and_effective_apart():
    od, covered, unused, sql = rows("azure_mca_amortized.csv", "azure", "2.42", "EUR")
    assert Decimal(covered["BilledCost"]) == 0 and Decimal(covered["EffectiveCost"]) == Decimal(
        "1.2"
    )
    assert covered["CommitmentDiscountType"] == "Savings Plan"
    assert (unused["CommitmentDiscountStatus"], Decimal(unused["EffectiveCost"])) == (
        "Unused",
        Decimal("0.3"),
    )
    assert Decimal(od["BilledCost"]) == Decimal(od["EffectiveCost"]) == Decimal("1.92")


@pytest.mark.parametrize("name", ["gcp_billing_export.jsonl", "gcp_billing_export.parquet"])
def test_gcp_export_nets_credits_and_reads_nested_records(name):
    compute, storage, commitment, tax = rows(name, "gcp", "2.5887654", "EUR")
    assert Decimal(compute["BilledCost"]) == Decimal("0.0887654")
    assert Decimal(compute["ListCost"]) == Decimal("0.1234567")
    assert len(orjson.loads(compute["x_Credits"])) == 2
    assert (compute["SubAccountId"], compute["RegionId"], compute["ServiceName"]) == (
        "shop-prod",
        "europe-west1",
        "Compute Engine",
    )
    assert compute["Tags"] == {"team": "shop", "env": "prod"}
    assert compute["x_ProjectNumber"] == "000123456789"
    assert (compute["ConsumedQuantity"], compute["PricingUnit"]) == ("14400.0", "hour")
    assert (
        compute["BillingPeriodStart"] == "2024-09-01T00:00:00Z"
        and compute["BillingPeriodEnd"] == "2024-10-01T00:00:00Z"
    )
    assert (
        commitment["ChargeCategory"] == "Purchase" and commitment["ChargeFrequency"] == "Recurring"
    )
    assert tax["ChargeCategory"] == "Tax"
