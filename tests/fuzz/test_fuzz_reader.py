"""Fuzz ingest's readers (CSV, CSV.gz, JSON lines, Parquet): any file is read or refused with an
ordinary exception (the importer turns it into a one-line reason and a failed job), never a
crash, a hang or an escape past `except Exception`; and what a well-formed file holds is read
back exactly, quotes, separators, line breaks and all."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.reader import NULL_SPELLINGS, BadFile, Source

SUFFIXES = ["csv", "csv.gz", "json", "parquet"]
names = st.lists(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True),
    min_size=1,
    max_size=5,
    unique=True,
)
cells = st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=20).filter(
    lambda s: s not in NULL_SPELLINGS
)


def _read_all(path: Path) -> list[dict]:
    source = Source(path, block_bytes=4096, batch_rows=64)
    source.header()
    rows: list[dict] = []
    for batch in source.batches():
        rows.extend(batch.to_dicts())
    return rows


def _table_bytes(kind: str, columns: list[str], rows: list[list[str]]) -> bytes:
    if kind in ("csv", "csv.gz"):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        data = buffer.getvalue().encode()
        return gzip.compress(data) if kind == "csv.gz" else data
    if kind == "json":
        return b"".join(orjson.dumps(dict(zip(columns, row))) + b"\n" for row in rows)
    sink = io.BytesIO()
    pq.write_table(pa.table({c: [row[i] for row in rows] for i, c in enumerate(columns)}), sink)
    return sink.getvalue()


tables = names.flatmap(
    lambda cols: st.tuples(
        st.just(cols),
        st.lists(st.lists(cells, min_size=len(cols), max_size=len(cols)), min_size=1, max_size=30),
    )
)


def _file(tmp: str, kind: str, data: bytes) -> Path:
    path = Path(tmp) / f"export.{kind}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", SUFFIXES)
@given(table=tables)
def test_a_well_formed_export_reads_back_exactly(kind, table):
    columns, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        got = _read_all(_file(tmp, kind, _table_bytes(kind, columns, rows)))
    assert got == [dict(zip(columns, row)) for row in rows]


@pytest.mark.parametrize("kind", SUFFIXES)
@given(
    table=tables,
    at=st.integers(0, 10_000),
    junk=st.binary(min_size=1, max_size=16),
    cut=st.booleans(),
)
def test_a_damaged_export_is_read_or_refused_with_an_ordinary_error(kind, table, at, junk, cut):
    data = _table_bytes(kind, *table)
    at = min(at, len(data))
    data = data[:at] if cut else data[:at] + junk + data[at + len(junk) :]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _read_all(_file(tmp, kind, data))
        except (BadFile, Exception) as exc:  # noqa: BLE001 - whatever it raises, its type is checked
            assert not isinstance(exc, MemoryError | SystemError | AssertionError), exc


@given(st.binary(max_size=4000), st.sampled_from(SUFFIXES))
def test_any_bytes_are_read_or_refused_with_an_ordinary_error(data, kind):
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _read_all(_file(tmp, kind, data))
        except Exception as exc:  # noqa: BLE001 - the property: nothing worse escapes
            assert not isinstance(exc, MemoryError | SystemError | AssertionError), exc
