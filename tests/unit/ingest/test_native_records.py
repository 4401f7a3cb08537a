"""The native record builder writes exactly what the contract hashes, whatever the text.

`services.ingest._records` copies polars' string views itself, so these cases go after
what a C loop can get wrong: escapes, inline (12 bytes or less) and buffered views, nulls,
sliced columns and columns spread over several data buffers.
"""

from __future__ import annotations

import hashlib
import os
import sys

import orjson
import polars as pl
import pytest

from schemas.ingest import derive_record_id
from services.ingest import native
from services.ingest.domain import content_json

pytestmark = pytest.mark.skipif(
    not native.available() and not os.environ.get("CI"),
    reason="the native record builder is not built here",
)

TAIL = b'","x_BillingScopeVersion":1,"x_ImportJobId":"job"}'
AWKWARD = [
    "".join(map(chr, range(0x20))),
    'quote " and backslash \\ and slash / and DEL \x7f',
    "café ✓ 😀 – multibyte text longer than twelve bytes",
    "short ✓",
    "",
    "exactly12byt",
    "thirteen byte",
    "\\",
    '"',
]


def expected(batch: pl.DataFrame, names: list[str]) -> tuple[list[bytes], list[str]]:
    """The polars path: content JSON by `content_json`, its sha256, the value."""
    contents = batch.select(content_json(batch, names)).to_series().to_list()
    ids = [hashlib.sha256(c.encode()).hexdigest()[:32] for c in contents]
    values = [c.encode()[:-1] + native.ID_MEMBER + i.encode() + TAIL for c, i in zip(contents, ids)]
    return values, ids


def build(batch: pl.DataFrame, names: list[str]) -> tuple[list[bytes], list[str]]:
    result = native.payloads(batch, names, TAIL)
    assert result is not None
    values, ids, markers = result
    assert len(markers) == 8 * batch.height
    for n, record_id in enumerate(ids):  # the marker is the id's first 16 hex digits as a number
        assert int.from_bytes(markers[n * 8 : n * 8 + 8], sys.byteorder) == int(record_id[:16], 16)
    return values, ids


def test_native_build_is_available_where_tests_run():
    assert native.available()


def test_escapes_and_view_kinds_match_the_contract():
    rows = []
    for n, text in enumerate(AWKWARD):
        rows.append(
            {
                "ProviderName": "AWS",
                "ChargeDescription": text,
                "ResourceId": None if n % 3 else f"r{n}",
                "Tags": '{"a":"b\\"c"}' if n % 2 else None,
            }
        )
    batch = pl.DataFrame(rows, schema={k: pl.Utf8 for k in rows[0]})
    names = list(batch.columns)
    values, ids = build(batch, names)
    assert (values, ids) == expected(batch, names)
    for row, value, record_id in zip(rows, values, ids):
        contract_row = {
            k: (orjson.loads(v) if k == "Tags" else v) for k, v in row.items() if v is not None
        }
        assert record_id == derive_record_id(contract_row)
        parsed = orjson.loads(value)
        assert parsed["ChargeDescription"] == row["ChargeDescription"]
        assert parsed["x_RecordId"] == record_id


def test_sliced_and_multi_buffer_columns_match_the_polars_path():
    height = 40_000  # long texts: polars spreads them over several data buffers
    batch = pl.DataFrame(
        {
            "BillingAccountId": [f"acct-{n:06d}" for n in range(height)],
            "ChargeDescription": [
                f'{"x" * (n % 200)} row {n} "q"' if n % 7 else None for n in range(height)
            ],
            "ServiceName": ["EC2"] * height,
        }
    )
    batch = pl.concat([batch.head(1000), batch]).slice(1500, 30_000)  # chunked, then sliced
    names = batch.columns
    assert build(batch, names) == expected(batch, names)


def test_all_null_columns_are_left_out():
    batch = pl.DataFrame({"A": ["1", "2"], "B": pl.Series([None, None], dtype=pl.Utf8)})
    values, _ = build(batch, ["A", "B"])
    assert all(b'"B"' not in v for v in values)
    assert values[0].startswith(b'{"A":"1","x_RecordId":"')


def test_random_texts_match_the_polars_path():
    """Seeded random text of every kind (controls, quotes, backslashes, multibyte, lengths on
    both sides of the 12-byte inline limit) and nulls in random places."""
    import random

    rng = random.Random(20261202)
    alphabet = [
        *map(chr, range(0x20)),
        '"',
        "\\",
        "/",
        "a",
        "Z",
        "0",
        " ",
        "é",
        "€",
        "😀",
        "\x7f",
        "{",
        "}",
    ]

    def text() -> str | None:
        if rng.random() < 0.15:
            return None
        return "".join(
            rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 11, 12, 13, 40, 300]))
        )

    rows = 2_000
    batch = pl.DataFrame(
        {name: [text() for _ in range(rows)] for name in ("A", "B", "ChargeDescription", "x_Z")}
    )
    batch = batch.with_columns(pl.lit("AWS").alias("ProviderName"))  # no row is all null
    names = batch.columns
    values, ids = build(batch, names)
    assert (values, ids) == expected(batch, names)
    for row, record_id in zip(batch.iter_rows(named=True), ids):
        assert record_id == derive_record_id({k: v for k, v in row.items() if v is not None})
