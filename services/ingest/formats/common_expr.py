"""Small polars helpers the provider formats share (pure)."""

from __future__ import annotations

import polars as pl


def pick(df: pl.DataFrame, *names: str) -> pl.Expr:
    """The first present of several alternative columns (coalesced), else a null text column."""
    present = [pl.col(n) for n in names if n in df.columns]
    if not present:
        return pl.lit(None, pl.Utf8)
    return present[0] if len(present) == 1 else pl.coalesce(present)


def dec(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_decimal(scale=18)


def dec_text(expr: pl.Expr) -> pl.Expr:
    """A decimal expression back to exact text without trailing zeros (`1.500` -> `1.5`)."""
    text = expr.cast(pl.Utf8)
    return text.str.replace(r"(\.\d*?)0+$", "$1").str.replace(r"\.$", "")


def map_get(df: pl.DataFrame, column: str, key: str) -> pl.Expr:
    """`key` of a map column: a Parquet map (list of key/value structs) or JSON object text."""
    if column not in df.columns:
        return pl.lit(None, pl.Utf8)
    dtype = df.schema[column]
    if dtype == pl.Utf8:
        return pl.col(column).str.json_path_match(f"$.{key}")
    if isinstance(dtype, pl.List):
        return (
            pl.col(column)
            .list.eval(
                pl.element().filter(pl.element().struct.field("key") == key).struct.field("value")
            )
            .list.first()
            .cast(pl.Utf8)
        )
    if isinstance(dtype, pl.Struct):
        names = [f.name for f in dtype.fields]
        return (
            pl.col(column).struct.field(key).cast(pl.Utf8)
            if key in names
            else pl.lit(None, pl.Utf8)
        )
    return pl.lit(None, pl.Utf8)


def tags_json(
    df: pl.DataFrame, map_columns: list[str], flat: dict[str, str], key_prefix: str | None = None
) -> pl.Expr:
    """Tags as JSON text from a map column (object text or key/value list) and/or flattened
    tag columns (`{column: tag key}`); `key_prefix` (a regex) is stripped from map keys.

    The result is a JSON object, or a JSON array of {"key", "value"} objects, which the
    record builder turns into a string object."""
    parts: list[pl.Expr] = []
    for column in map_columns:
        if column not in df.columns:
            continue
        dtype = df.schema[column]
        if dtype == pl.Utf8:
            expr = pl.col(column)
            if key_prefix:
                expr = expr.str.replace_all(rf'"{key_prefix}([^"]*)"\s*:', r'"$1":')
            parts.append(expr)
        elif isinstance(dtype, pl.List):
            element = pl.element()
            if key_prefix:
                element = element.struct.with_fields(
                    pl.field("key").str.replace(f"^{key_prefix}", "")
                )
            encoded = pl.col(column).list.eval(element.struct.json_encode()).list.join(",")
            parts.append(pl.when(pl.col(column).list.len() > 0).then(pl.format("[{}]", encoded)))
        elif isinstance(dtype, pl.Struct):
            parts.append(pl.col(column).struct.json_encode())
    flat_present = {c: k for c, k in flat.items() if c in df.columns}
    if flat_present:
        any_set = pl.any_horizontal([pl.col(c).is_not_null() for c in flat_present])
        encoded = pl.struct(
            [pl.col(c).alias(k) for c, k in flat_present.items()]
        ).struct.json_encode()
        parts.append(pl.when(any_set).then(encoded))
    if not parts:
        return pl.lit(None, pl.Utf8)
    return parts[0] if len(parts) == 1 else pl.coalesce(parts)
