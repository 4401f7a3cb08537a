"""AWS CUR (legacy and 2.0; CSV, CSV.gz and Parquet) mapped to FOCUS."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from schemas.ingest import BillingRecordV1
from services.ingest.formats import detect
from services.ingest.formats.aws_cur import snake
from services.ingest.reader import Source
from tests.unit.ingest.test_focus_normalisation import build

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"
VARIANTS = ["aws_cur_legacy.csv", "aws_cur_legacy.csv.gz", "aws_cur2.csv", "aws_cur2.parquet"]
EXPECTED_TOTAL = Decimal("93.7572")

#: line item type -> (ChargeCategory, ChargeClass, ChargeFrequency, BilledCost, EffectiveCost)
EXPECTED = {
    "Usage": ("Usage", None, "Usage-Based", "0.096", "0.096"),
    "DiscountedUsage": ("Usage", None, "Usage-Based", "0.192", "0.121"),
    "SavingsPlanCoveredUsage": ("Usage", None, "Usage-Based", "0.085", "0.06"),
    "SavingsPlanNegation": ("Usage", None, "Usage-Based", "-0.085", "0"),
    "SavingsPlanRecurringFee": ("Purchase", None, "Recurring", "0.07", "0.01"),
    "RIFee": ("Purchase", None, "Recurring", "0.121", "0"),
    "Fee": ("Purchase", None, "One-Time", "100", "100"),
    "Tax": ("Tax", None, "One-Time", "4.51", "4.51"),
    "Credit": ("Credit", None, "One-Time", "-10", "-10"),
    "Refund": ("Credit", "Correction", "One-Time", "-1.25", "-1.25"),
    "EdpDiscount": ("Credit", None, "Usage-Based", "-0.0048", "-0.0048"),
}


def records(name: str) -> list[dict]:
    out, rejected, tally = build(FIXTURES / name, "aws-cur")
    assert not rejected
    assert tally.totals == {"USD": EXPECTED_TOTAL}
    return [orjson.loads(r.value) for r in out]


def test_legacy_names_become_cur2_names():
    assert snake("lineItem/UsageAccountId") == "line_item_usage_account_id"
    assert snake("reservation/ReservationARN") == "reservation_reservation_a_r_n"
    assert snake("savingsPlan/SavingsPlanEffectiveCost") == "savings_plan_savings_plan_effective_cost"


@pytest.mark.parametrize("name", VARIANTS)
def test_cur_variants_are_detected(name):
    assert detect(Source(FIXTURES / name).header()) == "aws-cur"


@pytest.mark.parametrize("name", VARIANTS)
def test_line_item_types_map_to_focus_categories_and_costs(name):
    rows = records(name)
    assert len(rows) == 12
    for row in rows:
        BillingRecordV1.model_validate(row)
        expected = EXPECTED[row["x_LineItemType"]]
        if row["x_ProductCode"] == "AmazonS3" and row["x_LineItemType"] == "Usage":
            expected = ("Usage", None, "Usage-Based", "0.023", "0.023")
        got = (row["ChargeCategory"], row.get("ChargeClass"), row["ChargeFrequency"],
               Decimal(row["BilledCost"]), Decimal(row["EffectiveCost"]))
        assert got == (*expected[:3], Decimal(expected[3]), Decimal(expected[4])), row["x_LineItemType"]


@pytest.mark.parametrize("name", VARIANTS)
def test_accounts_keep_leading_zeros_and_tags_lose_the_user_prefix(name):
    rows = records(name)
    assert {r["BillingAccountId"] for r in rows} == {"012345678901"}
    assert {r["SubAccountId"] for r in rows} == {"009876543210"}
    assert rows[1]["Tags"] == {"team": "data", "env": "prod"}
    assert rows[0]["ServiceName"] == "Amazon Elastic Compute Cloud" and rows[0]["ServiceCategory"] == "Compute"
    assert rows[0]["x_BillingScope"] == "AWS:012345678901:2024-09"


@pytest.mark.parametrize("name", VARIANTS)
def test_commitment_discounts_carry_their_arn(name):
    rows = {r["x_LineItemType"]: r for r in records(name)}
    covered = rows["SavingsPlanCoveredUsage"]
    assert covered["CommitmentDiscountId"].endswith("savingsplan/sp-1")
    assert (covered["CommitmentDiscountType"], covered["CommitmentDiscountStatus"]) == ("Savings Plan", "Used")
    assert rows["DiscountedUsage"]["CommitmentDiscountType"] == "Reservation"
    assert rows["RIFee"]["CommitmentDiscountStatus"] == "Unused"


def test_unknown_line_item_types_are_kept_as_adjustments(tmp_path):
    import polars as pl

    frame = pl.read_csv(FIXTURES / "aws_cur_legacy.csv", infer_schema_length=0)
    frame = frame.with_columns(pl.lit("BrandNewType").alias("lineItem/LineItemType"))
    path = tmp_path / "cur.csv"
    frame.head(1).write_csv(path)
    out, rejected, _ = build(path, "aws-cur")
    row = orjson.loads(out[0].value)
    assert (row["ChargeCategory"], row["x_LineItemType"]) == ("Adjustment", "BrandNewType")
