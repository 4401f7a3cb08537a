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
    assert (
        snake("savingsPlan/SavingsPlanEffectiveCost") == "savings_plan_savings_plan_effective_cost"
    )


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
        got = (
            row["ChargeCategory"],
            row.get("ChargeClass"),
            row["ChargeFrequency"],
            Decimal(row["BilledCost"]),
            Decimal(row["EffectiveCost"]),
        )
        assert got == (*expected[:3], Decimal(expected[3]), Decimal(expected[4])), row[
            "x_LineItemType"
        ]


@pytest.mark.parametrize("name", VARIANTS)
def test_accounts_keep_leading_zeros_and_tags_lose_the_user_prefix(name):
    rows = records(name)
    assert {r["BillingAccountId"] for r in rows} == {"012345678901"}
    assert {r["SubAccountId"] for r in rows} == {"009876543210"}
    assert rows[1]["Tags"] == {"team": "data", "env": "prod"}
    assert (
        rows[0]["ServiceName"] == "Amazon Elastic Compute Cloud"
        and rows[0]["ServiceCategory"] == "Compute"
    )
    assert rows[0]["x_BillingScope"] == "AWS:012345678901:2024-09"


@pytest.mark.parametrize("name", VARIANTS)
def test_commitment_discounts_carry_their_arn(name):
    rows = {r["x_LineItemType"]: r for r in records(name)}
    covered = rows["SavingsPlanCoveredUsage"]
    assert covered["CommitmentDiscountId"].endswith("savingsplan/sp-1")
    assert (covered["CommitmentDiscountType"], covered["CommitmentDiscountStatus"]) == (
        "Savings Plan",
        "Used",
    )
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


# Where focus_converters 1.0.0 goes wrong on the same files (see docs/ingest.md): it reads
# no CUR 2.0 `..._a_r_n` column, casts account ids to integers and hangs after an error.


@pytest.mark.parametrize("name", ["aws_cur2.csv", "aws_cur2.parquet"])
def test_cur2_arn_columns_fill_commitment_discount_id(name):
    header = Source(FIXTURES / name).header()
    assert {"reservation_reservation_a_r_n", "savings_plan_savings_plan_a_r_n"} <= set(header)
    rows = {r["x_LineItemType"]: r for r in records(name)}
    assert rows["DiscountedUsage"]["CommitmentDiscountId"].startswith("arn:aws:ec2:")
    assert rows["SavingsPlanCoveredUsage"]["CommitmentDiscountId"].startswith(
        "arn:aws:savingsplans::"
    )
    assert "CommitmentDiscountId" not in rows["Usage"]


def test_account_ids_stay_text_with_their_leading_zeros_in_every_column(tmp_path):
    import polars as pl

    frame = pl.read_csv(FIXTURES / "aws_cur_legacy.csv", infer_schema_length=0)
    frame = frame.with_columns(
        pl.lit("000000000042").alias("bill/PayerAccountId"),
        pl.lit("0000000000007").alias("lineItem/UsageAccountId"),
    )
    path = tmp_path / "cur.csv"
    frame.write_csv(path)
    out, rejected, tally = build(path, "aws-cur")
    assert not rejected and tally.accounts == {"000000000042"}
    rows = [orjson.loads(r.value) for r in out]
    assert {(r["BillingAccountId"], r["SubAccountId"]) for r in rows} == {
        ("000000000042", "0000000000007")
    }
    assert {r.key for r in out} == {b"AWS:0000000000007"}
    assert rows[0]["x_BillingScope"] == "AWS:000000000042:2024-09"


class _Store:
    """Just enough of IngestStore for one import, in memory."""

    def __init__(self) -> None:
        self.finished: dict = {}
        self.chunks: dict = {}

    async def completed_job_for(self, checksum):
        return None

    async def start_job(self, job_id, **_):
        return 1

    async def heartbeat(self, *_):
        return True

    async def save_chunk(self, job_id, seq, built):
        self.chunks[seq] = built.records()

    async def save_rejections(self, *_):
        pass

    async def record_tally(self, *_):
        pass

    async def previous_scopes(self, _):
        return {}

    async def staged(self, *_):
        pass

    async def chunks_from(self, job_id, start):
        for seq in sorted(self.chunks):
            if seq >= start:
                yield seq, True, self.chunks[seq]

    async def chunk_published(self, *_):
        pass

    async def finish_job(self, job_id, *, status, error=None):
        self.finished = {"status": status, "error": error}


class _Keys:
    def key(self, issuer):
        return b"test-key"


class _Publisher:
    def __init__(self) -> None:
        self.records = 0

    async def publish(self, topic, records):
        self.records += len(records)
        return len(records)

    publish_batched = publish


def _import(path: Path):
    import asyncio

    from opentelemetry import trace

    from services.ingest.importer import Importer

    store, publisher = _Store(), _Publisher()
    importer = Importer(store, publisher, trace.get_tracer("test"), keys=_Keys())
    result = asyncio.run(asyncio.wait_for(importer.import_files([path]), timeout=60))
    return result, store, publisher


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text + "1,2,3\n", "Expected 41 columns, got 3"),
        (lambda text: text.replace("\n", '\n"', 5), "CSV"),
    ],
)
def test_a_broken_cur_fails_the_job_with_a_message_instead_of_hanging(tmp_path, damage, message):
    path = tmp_path / "cur.csv"
    path.write_text(damage((FIXTURES / "aws_cur_legacy.csv").read_text()))
    result, store, publisher = _import(path)
    assert result.status == "failed" and store.finished["status"] == "failed"
    assert message in result.error and result.error == store.finished["error"]
    assert publisher.records == 0  # nothing of a failed file is published


def test_a_truncated_gzip_cur_fails_the_job_with_a_message(tmp_path):
    path = tmp_path / "cur.csv.gz"
    path.write_bytes((FIXTURES / "aws_cur_legacy.csv.gz").read_bytes()[:-40])
    result, store, _ = _import(path)
    assert result.status == "failed" and "compressed stream" in result.error
    assert store.finished == {"status": "failed", "error": result.error}
