"""Provider export formats: detection from the header and mapping to FOCUS columns.

Each format module has `NAME`, `matches(columns) -> bool` and `to_focus(batch) -> batch`
(pure polars). `normalise` runs a format and then the shared checks.
"""

from __future__ import annotations

from types import ModuleType

import polars as pl

from services.ingest.formats import aws_cur, azure, focus, gcp
from services.ingest.formats.common import finish

#: detection order matters: provider formats first, FOCUS (the most generic) last
FORMATS: dict[str, ModuleType] = {
    aws_cur.NAME: aws_cur,
    azure.NAME: azure,
    gcp.NAME: gcp,
    focus.NAME: focus,
}
ROW = "_row"


class UnknownFormat(ValueError):
    """The header matches no supported export format."""


def detect(columns: list[str]) -> str:
    """The format whose signature columns the header carries."""
    for name, module in FORMATS.items():
        if module.matches(columns):
            return name
    raise UnknownFormat(
        "the header matches no supported format (focus, aws-cur, azure, gcp); "
        f"first columns: {columns[:8]}"
    )


def projection(format_name: str, columns: list[str]) -> list[str] | None:
    """The columns of a file with header `columns` that the format reads (None: all)."""
    module = FORMATS[format_name]
    return module.projection(columns) if hasattr(module, "projection") else None


def normalise(format_name: str, batch: pl.DataFrame, first_row: int) -> pl.DataFrame:
    """A raw batch as checked FOCUS rows, numbered from `first_row` (1 = first data row)."""
    module = FORMATS[format_name]
    numbered = batch.with_row_index(ROW, offset=first_row)
    return finish(module.to_focus(numbered))
