"""FOCUS CSV rows normalised to BillingRecord v1: the real sample and small edge cases."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest

from schemas.ingest import BillingRecordV1, derive_record_id
from services.ingest.domain import JobTally, RecordBuilder
from services.ingest.formats import detect, normalise
from services.ingest.reader import Source

SAMPLE = "focus-samples/FOCUS-1.0/focus_sample.csv"


@dataclass
class Record:
    key: bytes
    value: bytes
    record_id: str


def build(path: Path, fmt: str = "focus"):
    tally = JobTally()
    builder = RecordBuilder(file=path.name, job_id="job-test", version=7)
    records, rejected, first = [], [], 1
    for batch in Source(path).batches():
        built = builder.build(normalise(fmt, batch, first), tally)
        first += batch.height
        records += [Record(k, v, i) for k, v, i in zip(built.keys, built.values, built.record_ids)]
        rejected += built.rejections
    return records, rejected, tally


@pytest.fixture(scope="module")
def sample(shared_data):
    return build(shared_data / SAMPLE)


def test_sample_header_is_detected_as_focus(shared_data):
    assert detect(Source(shared_data / SAMPLE).header()) == "focus"


def test_every_sample_row_becomes_a_valid_billing_record(sample):
    records, rejected, tally = sample
    assert (len(records), len(rejected)) == (1000, 0)
    assert (tally.rows_read, tally.rows_published, tally.rows_rejected) == (1000, 1000, 0)
    for record in records:
        row = orjson.loads(record.value)
        model = BillingRecordV1.model_validate(row)
        assert model.x_RecordId == record.record_id == derive_record_id(row)
        assert record.key == model.partition_key()


def test_literal_null_and_empty_strings_become_absent_columns(sample):
    first = orjson.loads(sample[0][0].value)
    assert "AvailabilityZone" not in first and "ChargeClass" not in first and "Tags" not in first
    assert all(
        "CommitmentDiscountName" not in orjson.loads(r.value)
        or orjson.loads(r.value)["CommitmentDiscountName"]
        for r in sample[0]
    )


def test_timestamps_become_rfc3339_utc(sample):
    first = orjson.loads(sample[0][0].value)
    assert first["ChargePeriodStart"] == "2024-09-18T22:00:00Z"
    assert first["ChargePeriodEnd"] == "2024-09-18T23:00:00Z"
    assert first["BillingPeriodStart"] == "2024-09-01T00:00:00Z"


def test_json_tags_become_a_string_object(sample):
    second = orjson.loads(sample[0][1].value)
    assert second["Tags"] == {
        "application": "BrightLensMatrix",
        "environment": "dev",
        "business_unit": "ViennaAI",
    }


def test_money_keeps_its_exact_decimal_text(sample):
    first = orjson.loads(sample[0][0].value)
    assert first["BilledCost"] == "0.00000080000"
    assert BillingRecordV1.model_validate(first).BilledCost == Decimal("0.0000008")


def test_sample_total_matches_an_independent_decimal_sum_to_the_cent(shared_data, sample):
    import csv

    with open(shared_data / SAMPLE, newline="") as fh:
        expected = sum(Decimal(row["BilledCost"]) for row in csv.DictReader(fh))
    assert sample[2].totals["USD"] == expected
    assert sample[2].totals["USD"].quantize(Decimal("0.01")) == Decimal("20.52")


def test_extra_id_column_travels_as_an_extension_and_scopes_follow_the_billing_period(sample):
    records, _, tally = sample
    first = orjson.loads(records[0].value)
    assert first["x_Id"] == "11472" and "Id" not in first
    assert first["x_BillingScope"] == "AWS:1234567890123:2024-09"
    assert first["x_BillingScopeVersion"] == 7 and first["x_ImportJobId"] == "job-test"
    assert "AWS:1234567890123:2024-09" in tally.scopes and tally.billing_periods == [
        "2024-09",
        "2024-10",
    ]


def test_record_ids_are_deterministic_and_unique(shared_data, sample):
    again, _, _ = build(shared_data / SAMPLE)
    ids = [r.record_id for r in sample[0]]
    assert ids == [r.record_id for r in again]
    assert len(set(ids)) == 1000


def _csv(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "focus.csv"
    pl.DataFrame(rows).write_csv(path)
    return path


GOOD = {
    "ProviderName": "AWS",
    "BillingAccountId": "0012",
    "SubAccountId": "0034",
    "ServiceName": "EC2",
    "ChargeCategory": "Usage",
    "ChargePeriodStart": "2024-09-01 00:00:00",
    "ChargePeriodEnd": "2024-09-01 01:00:00",
    "BillingCurrency": "USD",
    "BilledCost": "1.10",
    "Tags": "NULL",
}


def test_identical_rows_in_one_file_are_kept_apart_by_occurrence(tmp_path):
    records, rejected, tally = build(_csv(tmp_path, [GOOD, GOOD, GOOD]))
    assert len({r.record_id for r in records}) == 3 and not rejected
    rows = [orjson.loads(r.value) for r in records]
    assert [r.record_id for r in records] == [
        derive_record_id(row, n) for n, row in enumerate(rows)
    ]
    assert tally.totals == {"USD": Decimal("3.30")}
    assert orjson.loads(records[0].value)["BillingAccountId"] == "0012"  # leading zeros kept


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ChargePeriodEnd": "2024-08-31 00:00:00"}, "ChargePeriodEnd is before ChargePeriodStart"),
        ({"BillingCurrency": "XYZ"}, "unknown currency 'XYZ'"),
        ({"BilledCost": "12,5"}, "BilledCost is not a number"),
        ({"ServiceName": "NULL"}, "missing ServiceName"),
        ({"ChargeCategory": "Fee"}, "ChargeCategory 'Fee' is not one of"),
        ({"ChargePeriodStart": "yesterday"}, "ChargePeriodStart is not a timestamp"),
        ({"Tags": "[1, 2]"}, "Tags is not a JSON object"),
        ({"BilledCost": "NULL"}, "BilledCost is missing"),
    ],
)
def test_bad_rows_are_rejected_with_their_reason_and_good_rows_flow(tmp_path, change, reason):
    records, rejected, tally = build(_csv(tmp_path, [GOOD, {**GOOD, **change}]))
    assert len(records) == 1 and len(rejected) == 1
    assert rejected[0].reason.startswith(reason), rejected[0].reason
    assert rejected[0].row == 2
    assert tally.totals == {"USD": Decimal("1.10")}


def test_record_ids_match_the_contract_for_awkward_text(tmp_path):
    awkward = {
        **GOOD,
        "ChargeDescription": 'a "quoted" \\ back\\slash, line\nbreak, tab\t, café ✓ \x01',
        "Tags": '{"b": "2", "a": "x\\"y", "n": 5, "none": null}',
    }
    records, rejected, _ = build(_csv(tmp_path, [awkward]))
    assert not rejected
    row = orjson.loads(records[0].value)
    assert row["ChargeDescription"] == awkward["ChargeDescription"]
    assert row["Tags"] == {"a": 'x"y', "b": "2", "n": "5"}
    assert records[0].record_id == derive_record_id(row)


def test_seen_markers_answer_like_a_set_across_batches():
    import random

    import numpy as np

    from services.ingest.domain import SeenMarkers

    rng = random.Random(3)
    markers, seen = SeenMarkers(), set()
    for _ in range(150):
        batch = [rng.randrange(3000) for _ in range(40)]
        expected = []
        for value in batch:
            expected.append(value in seen)
            seen.add(value)
        assert markers.add(np.array(batch, dtype=np.uint64)).tolist() == expected
    assert len(markers) == len(seen)


def test_seen_markers_survive_a_batch_made_only_of_repeats():
    import numpy as np

    from services.ingest.domain import SeenMarkers

    markers = SeenMarkers()
    markers.add(np.array([1, 2, 3], dtype=np.uint64))
    assert markers.add(np.array([2, 3], dtype=np.uint64)).tolist() == [True, True]
    assert markers.add(np.array([3, 4], dtype=np.uint64)).tolist() == [True, False]
    assert len(markers) == 4
