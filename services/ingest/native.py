"""The optional native record builder (`_records.c`), fed straight from polars' buffers.

No I/O. `payloads` returns None when the extension was not built (no C compiler or
OpenSSL headers at install time) or a column is not in Arrow's string-view layout; the
caller then builds the same bytes with polars and hashlib. `keep_freed_heap` changes a
process-wide allocator setting, once per process.
"""

from __future__ import annotations

import ctypes
import functools
import sys

import orjson
import polars as pl

try:
    from services.ingest import _records  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the install
    _records = None

#: the member the value gets after the content: `,"x_RecordId":"<32 hex digits>`
ID_MEMBER = b',"x_RecordId":"'


#: glibc's mallopt parameter for how much freed memory at the top of the heap stays mapped
_M_TRIM_THRESHOLD = -1


@functools.cache
def keep_freed_heap(limit: int = 64 << 20) -> bool:
    """Lets glibc keep up to `limit` bytes of freed heap mapped instead of handing it back
    to the system after every batch.

    Each batch's values (about 40 MB of ~1.2 kB texts in a 32k-row batch) are freed when
    the next batch is built; with glibc's default 128 kB threshold the heap shrank and
    regrew every time, and faulting those pages in again cost 0.75 us a row, a third of
    building the records.
    Returns whether the setting took (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_TRIM_THRESHOLD, int(limit)))
    except (OSError, AttributeError):
        return False


def available() -> bool:
    """Whether the extension was built with this install."""
    return _records is not None


def _column(series: pl.Series) -> tuple | None:
    """What `_records.build` reads of one text column: its buffers (exported without a copy)."""
    array = series.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    if str(array.type) != "string_view":
        return None
    name = series.name
    prefix = orjson.dumps(name) + (b":" if name == "Tags" else b':"')
    validity, views, *data = array.buffers()
    return (
        prefix,
        name == "Tags",
        validity if array.null_count else None,
        views,
        data,
        array.offset,
    )


def payloads(
    batch: pl.DataFrame, names: list[str], tail: bytes
) -> tuple[list[bytes], list[str], bytes] | None:
    """The value of every row (content JSON of the `names` columns, then its x_RecordId,
    then `tail`), the ids, and each row's duplicate marker (the first 8 bytes of its sha256,
    big-endian, as native uint64s); None when not available.

    Tags holds canonical JSON text and goes in as it is; the other columns are strings."""
    if _records is None:
        return None
    columns = []
    for name in sorted(names):
        series = batch.get_column(name)
        if series.null_count() == series.len():
            continue
        column = _column(series)
        if column is None:
            return None
        columns.append(column)
    return _records.build(columns, batch.height, tail)
