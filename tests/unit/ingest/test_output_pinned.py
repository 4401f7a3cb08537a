"""Record bytes pinned: every published key, JSON value and x_RecordId stays byte for byte
what it was when these digests were taken, whatever the normalisation does to go faster.

The record id is the idempotence key downstream, so a change here would make a re-import
count twice. Each case digests the keys, values and ids of a whole file, read in small
blocks so that several batches (and the duplicate markers across them) are exercised.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import polars as pl
import pytest

from services.ingest import native
from services.ingest.domain import JobTally, RecordBuilder
from services.ingest.formats import detect, normalise, projection
from services.ingest.reader import Source

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"

#: file -> sha256 of (key, value, id) of every published record, then of every rejection
PINNED = {
    "aws_cur_legacy.csv": "e440d57e876a2aced037fad3455daeca7457274d2fad39d28f368002718cb737",
    "aws_cur_legacy.csv.gz": "e440d57e876a2aced037fad3455daeca7457274d2fad39d28f368002718cb737",
    "aws_cur2.csv": "ab9bcf056c8127acaa611a6deb58a18cd8f33596db9b2800d2bb0c97c9607c0d",
    "aws_cur2.parquet": "fbcad3cbc10d36a935542346293f3aaf89d0860af40eefd0237efa18b6ccff42",
    "azure_ea_actual.csv": "7098a7d306df43c7148b63aa92f02a40f4c5dd96dea520c0729503e6c891605b",
    "azure_mca_amortized.csv": "08a711e5c69c0bd1754acdbdf11a5364f2a1d0152764dff5468e834f7068f175",
    "gcp_billing_export.jsonl": "f5efc338790d6a519f4f37a6c9c5ea3ac0e5afabff237939b291def65067a4c4",
    "gcp_billing_export.parquet": "f5efc338790d6a519f4f37a6c9c5ea3ac0e5afabff237939b291def65067a4c4",
    "focus-sample": "47f1f90a91724ec6a1be3bd6d1839670db7f08c71ef52979db1ade188411f0f0",
    "awkward.csv": "5c98914199bc1b1bf346350d445396d78a9270558611a5e4e6f1de793db2f42e",
}

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
    "ChargeDescription": "plain",
}


def awkward_rows() -> list[dict]:
    """Escapes, unicode, tags of every shape, repeats within and across blocks, bad rows."""
    rows = []
    for n in range(60):
        row = dict(GOOD)
        row["ResourceId"] = f"i-{n % 7}"  # repeats: rows 0, 7, 14... are identical
        if n % 5 == 1:
            row["ChargeDescription"] = 'a "quoted" \\ back\\slash, line\nbreak, tab\t, café ✓ \x01'
        if n % 6 == 2:
            row["Tags"] = '{"b": "2", "a": "x\\"y", "n": 5, "none": null}'
        if n % 6 == 3:
            row["Tags"] = '[{"key": "k", "value": "v"}]'
        if n % 11 == 4:
            row["Tags"] = "[1, 2]"
        if n % 13 == 5:
            row["BilledCost"] = "12,5"
        if n % 9 == 6:
            row["ChargePeriodStart"] = "2024-09-01T00:00:00.250Z"
        if n % 17 == 7:
            row["x_Note"] = "extension"
        rows.append(row)
    return rows


@pytest.fixture(params=["native", "polars"])
def builder_kind(request) -> str:
    """Each case runs through both record builders: they must give the same bytes."""
    if request.param == "native" and not native.available():
        if os.environ.get("CI"):
            pytest.fail("the native record builder was not built (services/ingest/_records.c)")
        pytest.skip("the native record builder is not built here")
    return request.param


def digest(
    path: Path, fmt: str | None = None, block_bytes: int = 4096, kind: str = "native"
) -> str:
    source = Source(path, block_bytes=block_bytes, batch_rows=5)
    fmt = fmt or detect(source.header())
    builder = RecordBuilder(file=path.name, job_id="job-pinned", version=3, native=kind == "native")
    tally, out, refused, first = JobTally(), hashlib.sha256(), hashlib.sha256(), 1
    for batch in source.batches(projection(fmt, source.header())):  # as the importer reads
        built = builder.build(normalise(fmt, batch, first), tally)
        first += batch.height
        for key, value, record_id in zip(built.keys, built.values, built.record_ids, strict=True):
            out.update(b"%d:%s|%d:%s|%s\n" % (len(key), key, len(value), value, record_id.encode()))
        for r in built.rejections:
            refused.update(f"{r.file}|{r.row}|{r.reason}|{sorted(r.original.items())}\n".encode())
    out.update(refused.digest())
    out.update(orjson.dumps(tally.summary(), option=orjson.OPT_SORT_KEYS))
    return out.hexdigest()


@pytest.mark.parametrize("name", [n for n in PINNED if n not in ("focus-sample", "awkward.csv")])
def test_fixture_records_are_byte_for_byte_unchanged(name, builder_kind):
    assert digest(FIXTURES / name, kind=builder_kind) == PINNED[name]


def test_focus_sample_records_are_byte_for_byte_unchanged(shared_data, builder_kind):
    path = shared_data / "focus-samples" / "FOCUS-1.0" / "focus_sample.csv"
    assert digest(path, "focus", block_bytes=64 * 1024, kind=builder_kind) == PINNED["focus-sample"]


def test_awkward_records_are_byte_for_byte_unchanged(tmp_path, builder_kind):
    path = tmp_path / "awkward.csv"
    rows = awkward_rows()
    columns = sorted({k for r in rows for k in r})
    pl.DataFrame([{c: r.get(c) for c in columns} for r in rows]).write_csv(path)
    assert digest(path, "focus", block_bytes=1024, kind=builder_kind) == PINNED["awkward.csv"]
