"""Stream a billing export in bounded batches: CSV, CSV.gz, JSON lines(.gz) and Parquet.

Nothing here holds a whole file: CSV and JSON lines go through pyarrow's streaming readers
(1 MB blocks, gathered into batches of about 16k rows), Parquet through `iter_batches`.
Every batch is a polars DataFrame.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from polars.exceptions import PanicException

from services.ingest.formats.common import to_strings

NULL_SPELLINGS = ["NULL", "null", ""]
#: pyarrow's CSV reader holds about 30 times its block in memory (260 MB for 8 MB blocks),
#: so it reads small blocks, and the rows of several make one batch
BLOCK_BYTES = 1024 * 1024
BATCH_ROWS = 32_768


def _grouped(blocks: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Consecutive blocks joined into tables of at least `rows` rows (the last one smaller)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for block in blocks:
        if block.num_rows:
            pending.append(block)
            count += block.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def file_checksum(path: Path) -> str:
    """sha256 of the file's bytes: the same export imported twice has the same checksum."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff(path: Path) -> str:
    """`parquet`, `csv` or `ndjson` (gzip is looked through)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "parquet"
    opener = gzip.open if head[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        start = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    return "ndjson" if start[:1] in (b"{", b"[") else "csv"


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class BadFile(ValueError):
    """The file is not a readable billing export (not a regular file, binary content)."""


def _no_nul(batch: pl.DataFrame, first_row: int) -> pl.DataFrame:
    """A NUL byte in a text export means a corrupted or binary file (PostgreSQL stores no NUL
    in text either): the whole file is refused, not the row, so nothing of it counts."""
    text = [c for c, t in batch.schema.items() if t == pl.Utf8]
    if not text:
        return batch
    found = batch.select(
        pl.any_horizontal([pl.col(c).str.contains("\x00", literal=True) for c in text])
        .arg_true()
        .first()
    ).item()
    if found is not None:
        raise BadFile(f"NUL byte in data row {first_row + found}: not a text export")
    return batch


def _checked_frame(table: pa.Table, first_row: int) -> pl.DataFrame:
    """The table as a DataFrame, or BadFile when its text is not UTF-8: neither pyarrow's
    Parquet nor its JSON reader checks every byte, and polars then panics (a PanicException,
    which passes `except Exception`) when it builds the frame or reads it (found by fuzzing;
    about 0.3 us a row of 40 text columns)."""
    try:
        table.validate(full=True)
        return pl.from_arrow(table)  # type: ignore[return-value]
    except (pa.ArrowInvalid, PanicException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadFile(f"data row {first_row} on: not valid text ({reason})") from None


class Source:
    """One export file read batch by batch; `position()` says how far for a progress bar."""

    def __init__(
        self, path: Path, *, block_bytes: int = BLOCK_BYTES, batch_rows: int = BATCH_ROWS
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():  # a FIFO or /dev/zero would block or never end
            raise BadFile(f"{self.path} is not a regular file")
        self.kind = sniff(self.path)
        self.size = self.path.stat().st_size
        self.block_bytes = block_bytes
        self.batch_rows = batch_rows
        self._raw: io.BufferedReader | None = None
        self._rows_done = 0
        self._rows_total: int | None = None

    def position(self) -> int:
        """Bytes of the file consumed so far (estimated from rows for Parquet)."""
        if self.kind == "parquet":
            if not self._rows_total:
                return 0
            return int(self.size * self._rows_done / self._rows_total)
        if self._raw is None or self._raw.closed:
            return self.size
        return self._raw.tell()

    def header(self) -> list[str]:
        """Column names, read without loading data."""
        if self.kind == "parquet":
            return list(pq.ParquetFile(self.path).schema_arrow.names)
        if self.kind == "ndjson":
            for batch in self.batches():
                return batch.columns
            return []
        opener = gzip.open if is_gzip(self.path) else open
        with opener(self.path, "rt", encoding="utf-8-sig", newline="") as fh:
            import csv

            return next(csv.reader(fh), [])

    def batches(self, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """The file's rows as DataFrames of at most one block each, flat columns as text;
        only `columns` (names from `header()`) when given: the others are not parsed."""
        if self.kind == "parquet":
            yield from self._parquet(columns)
        elif self.kind == "ndjson":
            for batch in self._ndjson():
                yield (
                    batch
                    if columns is None
                    else batch.select([c for c in columns if c in batch.columns])
                )
        else:
            yield from self._csv(None if columns is None else [c.lstrip("\ufeff") for c in columns])

    def _open(self) -> pa.NativeFile:
        self._raw = self.path.open("rb")
        compression = "gzip" if is_gzip(self.path) else None
        return pa.input_stream(self._raw, compression=compression)

    def _csv(self, columns: list[str] | None) -> Iterator[pl.DataFrame]:
        """Fast parsing first; a quoted line break in a value makes pyarrow stop, and the file
        is then read again in the slower mode from the first row not yet yielded."""
        names = [n.lstrip("\ufeff") for n in self.header()]
        done = 0
        for newlines in (False, True):
            stream = self._open()
            try:
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(
                        block_size=self.block_bytes,
                        column_names=names,
                        skip_rows=1,
                        use_threads=False,
                        skip_rows_after_names=done,
                    ),
                    parse_options=pacsv.ParseOptions(newlines_in_values=newlines),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=columns,
                        column_types={n: pa.string() for n in names},
                        null_values=NULL_SPELLINGS,
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=True,
                    ),
                )
                for table in _grouped(reader, self.batch_rows):
                    batch = _no_nul(pl.from_arrow(table), done + 1)  # type: ignore[arg-type]
                    done += table.num_rows
                    yield batch
                return
            except pa.ArrowInvalid:
                if newlines:
                    raise
            finally:
                stream.close()
                if self._raw is not None:
                    self._raw.close()

    def _ndjson(self) -> Iterator[pl.DataFrame]:
        stream = self._open()
        try:
            reader = pajson.open_json(
                stream, read_options=pajson.ReadOptions(block_size=self.block_bytes)
            )
            done = 0
            for table in _grouped(reader, self.batch_rows):
                batch = _no_nul(to_strings(_checked_frame(table, done + 1)), done + 1)
                done += table.num_rows
                yield batch
        finally:
            stream.close()
            if self._raw is not None:
                self._raw.close()

    def _parquet(self, columns: list[str] | None) -> Iterator[pl.DataFrame]:
        parquet = pq.ParquetFile(self.path)
        self._rows_total = parquet.metadata.num_rows
        # decoding columns on a thread pool pays only with a second core to run it on (one
        # core: 0.68 against 1.03 us a row of a CUR 2.0 file without the pool)
        threads = len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else True
        for batch in parquet.iter_batches(
            batch_size=self.batch_rows, columns=columns, use_threads=threads
        ):
            first = self._rows_done + 1
            self._rows_done += batch.num_rows
            if batch.num_rows:
                yield to_strings(_checked_frame(pa.Table.from_batches([batch]), first))
