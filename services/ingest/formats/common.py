"""Vectorised normalisation shared by every format: FOCUS column names in, checked rows out.

Each format maps a provider's columns to FOCUS columns as strings (`to_focus`); `finish`
then turns timestamps into RFC 3339, checks what `BillingRecordV1` requires, and names the
reason of every row it refuses in the `_error` column. Pure polars: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from schemas.common import MAX_FRACTION_DIGITS, MAX_TEXT
from schemas.currencies import is_iso_4217
from schemas.ingest import MONEY_COLUMNS, OTHER_FOCUS_COLUMNS, BillingRecordV1, ChargeCategoryName

ERROR = "_error"
SCOPE = "_scope"
#: every column name a BillingRecordV1 accepts without the x_ prefix
FOCUS_COLUMNS = frozenset(BillingRecordV1.model_fields) | OTHER_FOCUS_COLUMNS
TIMESTAMP_COLUMNS = (
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BillingPeriodStart",
    "BillingPeriodEnd",
)
DECIMAL_COLUMNS = (
    *MONEY_COLUMNS,
    "ListUnitPrice",
    "ContractedUnitPrice",
    "ConsumedQuantity",
    "PricingQuantity",
)
REQUIRED_TEXT = ("ProviderName", "BillingAccountId", "ServiceName")
CHARGE_CATEGORIES = [c.value for c in ChargeCategoryName]
#: precision kept when summing money: exact for any real bill
TOTAL_DTYPE = pl.Decimal(38, 18)

_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%MZ",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S UTC",
    "%Y-%m-%d %H:%M:%S%.f UTC",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y",
)
_OFFSET_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%:z",
    "%Y-%m-%d %H:%M:%S%#z",
    "%Y-%m-%dT%H:%M:%S%#z",
)


def _parse_with(text: pl.Expr, fmt: str) -> pl.Expr:
    if fmt in _OFFSET_FORMATS:
        return text.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
    return text.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.replace_time_zone("UTC")


def parse_timestamp(col: pl.Expr) -> pl.Expr:
    """UTC datetimes from the timestamp spellings real exports use; null where none fits."""
    text = col.cast(pl.Utf8).str.strip_chars()
    return pl.coalesce(*[_parse_with(text, f) for f in (*_TIMESTAMP_FORMATS, *_OFFSET_FORMATS)])


def parse_timestamp_column(df: pl.DataFrame, column: str) -> pl.Series:
    """`parse_timestamp` for one column of a batch, fast: the spelling of the first values is
    tried first on the whole column, and all spellings only where that one does not fit."""
    values = df.get_column(column)
    sample = values.drop_nulls().head(8)
    if sample.len() == 0:
        return pl.Series(column, [None] * df.height, dtype=pl.Datetime("us", "UTC"))
    text = pl.col(column).str.strip_chars()
    probe = pl.DataFrame({column: sample})
    for fmt in (*_TIMESTAMP_FORMATS, *_OFFSET_FORMATS):
        if probe.select(_parse_with(text, fmt).is_not_null().all()).item():
            parsed = df.select(_parse_with(text, fmt)).to_series()
            missed = parsed.is_null() & values.is_not_null()
            if missed.any():
                parsed = df.select(pl.coalesce(parsed, parse_timestamp(pl.col(column)))).to_series()
            return parsed.alias(column)
    return df.select(parse_timestamp(pl.col(column))).to_series().alias(column)


def rfc3339(col: pl.Expr, fractions: bool = True) -> pl.Expr:
    """`2024-09-18T22:00:00Z`, with fractional seconds only when there are some."""
    whole = col.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if not fractions:
        return whole
    frac = col.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    return pl.when(col.dt.microsecond() == 0).then(whole).otherwise(frac)


def to_strings(df: pl.DataFrame) -> pl.DataFrame:
    """Every flat column as text (Parquet brings typed columns; CSV is text already).

    Timestamps become RFC 3339 text, numbers their exact decimal text; empty text is null.
    """
    exprs: list[pl.Expr | pl.Series] = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if dtype == pl.Utf8:
            exprs.append(pl.when(col.str.len_bytes() == 0).then(None).otherwise(col).alias(name))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(_datetime_text(df, name, dtype))
        elif isinstance(dtype, pl.Date):
            exprs.append(col.dt.strftime("%Y-%m-%dT00:00:00Z").alias(name))
        elif dtype.is_numeric() or dtype == pl.Boolean:
            exprs.append(col.cast(pl.Utf8).alias(name))
        else:
            exprs.append(col)  # nested (GCP credits, labels): the format handles them
    return df.select(exprs)


def _datetime_text(df: pl.DataFrame, name: str, dtype: pl.Datetime) -> pl.Series:
    """RFC 3339 text of a datetime column, each distinct value formatted once (hourly
    usage repeats the same few hundred instants)."""
    col = pl.col(name)
    utc = (
        col.dt.replace_time_zone("UTC")
        if dtype.time_zone is None
        else col.dt.convert_time_zone("UTC")
    )
    distinct = df.get_column(name).drop_nulls().unique()
    if 2 * len(distinct) > df.height:
        return df.select(rfc3339(utc).alias(name)).to_series()
    table = pl.DataFrame({name: distinct}).with_columns(rfc3339(utc).alias("_text"))
    joined = df.select(name).join(table, on=name, how="left", maintain_order="left")
    return joined.get_column("_text").alias(name)


def _first_error(checks: Iterable[tuple[pl.Expr, pl.Expr | str]]) -> pl.Expr:
    expr: pl.Expr | None = None
    for failed, reason in reversed(list(checks)):
        message = pl.lit(reason) if isinstance(reason, str) else reason
        expr = (
            pl.when(failed)
            .then(message)
            .otherwise(expr if expr is not None else pl.lit(None, pl.Utf8))
        )
    return expr if expr is not None else pl.lit(None, pl.Utf8)


def finish(df: pl.DataFrame) -> pl.DataFrame:
    """Check and normalise FOCUS-named text columns; adds `_error` (null when the row is good)
    and `_scope` (`provider:billing-account:YYYY-MM` of the billing period)."""
    for name in (
        *REQUIRED_TEXT,
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "BillingCurrency",
        "ChargeCategory",
        "BilledCost",
    ):
        if name not in df.columns:
            df = df.with_columns(pl.lit(None, pl.Utf8).alias(name))
    present_ts = [c for c in TIMESTAMP_COLUMNS if c in df.columns]
    parsed = {c: f"_ts_{c}" for c in present_ts}
    long_text = _longer_than(df, MAX_TEXT)
    df = df.with_columns([series for c in present_ts for series in _timestamps(df, c)])
    decimals = [c for c in DECIMAL_COLUMNS if c in df.columns]
    df = df.with_columns(_decimals(df, decimals))
    currencies = df.get_column("BillingCurrency").drop_nulls().unique().to_list()
    bad_currencies = [c for c in currencies if not is_iso_4217(c)]

    def has(c: str) -> pl.Expr:
        return pl.col(c).is_not_null() if c in df.columns else pl.lit(False)

    checks: list[tuple[pl.Expr, pl.Expr | str]] = []
    for name in REQUIRED_TEXT:
        checks.append((pl.col(name).is_null(), f"missing {name}"))
    for name in ("ChargePeriodStart", "ChargePeriodEnd"):
        checks.append((pl.col(name).is_null(), f"missing {name}"))
    for name, p in parsed.items():
        checks.append(
            (
                pl.col(name).is_not_null() & pl.col(p).is_null(),
                pl.format(
                    f"{name} is not a timestamp of years 1 to 9999 (UTC): '{{}}'", pl.col(name)
                ),
            )
        )
    checks.append(
        (
            pl.col("_ts_ChargePeriodEnd") < pl.col("_ts_ChargePeriodStart"),
            "ChargePeriodEnd is before ChargePeriodStart",
        )
    )
    checks.append((pl.col("BillingCurrency").is_null(), "missing BillingCurrency"))
    checks.append(
        (
            pl.col("BillingCurrency").is_in(bad_currencies),
            pl.format(
                "unknown currency '{}': expected an ISO 4217 code", pl.col("BillingCurrency")
            ),
        )
    )
    checks.append((pl.col("ChargeCategory").is_null(), "missing ChargeCategory"))
    checks.append(
        (
            ~pl.col("ChargeCategory").is_in(CHARGE_CATEGORIES),
            pl.format(
                "ChargeCategory '{}' is not one of " + ", ".join(CHARGE_CATEGORIES),
                pl.col("ChargeCategory"),
            ),
        )
    )
    for name in decimals:
        checks.append(
            (
                pl.col(name).is_not_null() & pl.col(f"_dec_{name}").is_null(),
                pl.format(f"{name} is not a number: '{{}}'", pl.col(name)),
            )
        )
    # what BillingRecord v1 refuses, ingest refuses too (pricing would dead-letter the row
    # after the import counted it): text over MAX_TEXT characters, money written with more
    # than MAX_FRACTION_DIGITS digits after the point
    for name in long_text:
        checks.append(
            (
                pl.col(name).str.len_chars() > MAX_TEXT,
                f"{name} is longer than {MAX_TEXT} characters",
            )
        )
    for name in _longer_than(df.select(decimals), MAX_FRACTION_DIGITS + 1):
        fraction = pl.col(f"_txt_{name}").str.extract(r"\.([0-9]*)$").str.len_bytes()
        checks.append(
            (
                fraction > MAX_FRACTION_DIGITS,
                f"{name} has more than {MAX_FRACTION_DIGITS} digits after the decimal point",
            )
        )
    no_usage = ~(has("ConsumedQuantity") & has("ConsumedUnit"))
    no_sku = ~(has("SkuId") | has("ResourceType"))
    checks.append(
        (
            pl.col("BilledCost").is_null() & no_usage,
            "BilledCost is missing and the row has no usage to price (ConsumedQuantity and ConsumedUnit)",
        )
    )
    checks.append(
        (
            pl.col("BilledCost").is_null() & no_sku,
            "BilledCost is missing and the row has neither SkuId nor ResourceType",
        )
    )
    period = (
        pl.col("_month_BillingPeriodStart")
        if "BillingPeriodStart" in parsed
        else pl.col("_month_ChargePeriodStart")
    )
    period = pl.coalesce(period, pl.col("_month_ChargePeriodStart"))
    out = df.with_columns(
        _first_error(checks).alias(ERROR),
        pl.format("{}:{}:{}", pl.col("ProviderName"), pl.col("BillingAccountId"), period).alias(
            SCOPE
        ),
        *[pl.col(f"_text_{c}").alias(c) for c in parsed],
        *[pl.col(f"_txt_{c}").alias(c) for c in decimals],
    )
    helpers = ("_ts_", "_text_", "_month_", "_txt_", "_dec_")
    return out.drop([c for c in out.columns if c.startswith(helpers) and c != "_dec_BilledCost"])


def _longer_than(df: pl.DataFrame, limit: int) -> list[str]:
    """Text columns of `df` with a value of more than `limit` bytes (one pass over the batch,
    so the row checks are only added where they can fail)."""
    text = [c for c, t in df.schema.items() if t == pl.Utf8 and not c.startswith("_")]
    if not text or not df.height:
        return []
    longest = df.select([pl.col(c).str.len_bytes().max() for c in text]).row(0)
    return [c for c, n in zip(text, longest) if n is not None and n > limit]


def _timestamps(df: pl.DataFrame, column: str) -> list[pl.Series]:
    """`_ts_<column>` (UTC datetime), `_text_<column>` (RFC 3339 text) and `_month_<column>`
    (`YYYY-MM`) of a timestamp column, null where the text is no timestamp.

    A bill repeats few distinct timestamps (hours of a month), so each distinct text of the
    batch is parsed and formatted once and the results are joined back: the same values as
    parsing every row (a value's rendering depends on nothing but the value), a fifth of the
    work. Columns of mostly distinct values are handled row by row."""
    distinct = df.get_column(column).drop_nulls().unique(maintain_order=True)
    table = df.select(column) if 2 * len(distinct) > df.height else pl.DataFrame({column: distinct})
    parsed = parse_timestamp_column(table, column)
    # years 1 to 9999 in UTC, after the offset: what PostgreSQL, pricing and `export focus`
    # hold (0001-01-01T00:00:00+05:00 is year 0 in UTC)
    parsed = (
        table.select(pl.when(pl.lit(parsed).dt.year().is_between(1, 9999)).then(pl.lit(parsed)))
        .to_series()
        .alias(column)
    )
    table = table.with_columns(
        parsed.alias(f"_ts_{column}"),
        rfc3339(pl.lit(parsed)).alias(f"_text_{column}"),
        pl.lit(parsed).dt.strftime("%Y-%m").alias(f"_month_{column}"),
    )
    if table.height == 1 < df.height and not df.get_column(column).null_count():
        return [_repeat(c, df.height) for c in table.drop(column).get_columns()]  # one instant
    if table.height != df.height:
        table = df.select(column).join(table, on=column, how="left", maintain_order="left")
    return table.drop(column).get_columns()


def constant_columns(df: pl.DataFrame, names: list[str]) -> list[str]:
    """Those of `names` (columns holding no null) with one value on every row of `df`."""
    if not names or not df.height:
        return []
    same = df.select([(pl.col(n) == pl.col(n).first()).all() for n in names]).row(0)
    return [n for n, one in zip(names, same) if one]


def _repeat(series: pl.Series, height: int) -> pl.Series:
    """A one-value series as `height` rows."""
    return series.extend_constant(series[0], height - 1)


def _decimals(df: pl.DataFrame, columns: list[str]) -> list[pl.Series]:
    """`_txt_<column>` (the text stripped) and `_dec_<column>` (its decimal value, null where
    it is no number) of each money or quantity column; a column holding one value on every
    row (a unit price, a rate) is parsed once."""
    if not columns:
        return []
    full = [c for c, n in zip(columns, df.select(columns).null_count().row(0)) if not n]
    constant = set(constant_columns(df, full)) if df.height > 1 else set()

    def parse(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
        stripped = frame.select([pl.col(c).str.strip_chars().alias(f"_txt_{c}") for c in names])
        return stripped.with_columns(
            [pl.col(f"_txt_{c}").str.to_decimal(scale=18).alias(f"_dec_{c}") for c in names]
        )

    varying = [c for c in columns if c not in constant]
    out = parse(df, varying).get_columns() if varying else []
    if constant:
        out += [_repeat(s, df.height) for s in parse(df.head(1), sorted(constant)).get_columns()]
    return out


def extension_name(column: str) -> str:
    """A column that is not FOCUS travels as an `x_` extension column (`Id` -> `x_Id`)."""
    if column in FOCUS_COLUMNS or column.startswith(("x_", "_")):
        return column
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in column)
    return f"x_{cleaned}"
