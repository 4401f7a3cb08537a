"""`finfocus export focus`: the platform's cost lines as a FOCUS 1.2 file (CSV or Parquet).

Reads `pricing.v_cost_lines` (its `record` column, the full PricedRecord v1) through the
read-only role, streaming with a server-side cursor, so memory stays bounded whatever the
window. Columns FOCUS makes mandatory but a record may lack are filled the way the
specification allows (ListCost/ContractedCost/EffectiveCost fall back to BilledCost, the
billing period to the charge's calendar month, names to ids).
"""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer

from finfocus.cli.output import err_console, fail, run

#: FOCUS 1.2 columns in the order written (the extension columns follow)
FOCUS_12_COLUMNS = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
]
EXTENSION_COLUMNS = ["x_RecordId", "x_PriceSource", "x_BillingScope", "x_ImportJobId"]
COLUMNS = FOCUS_12_COLUMNS + EXTENSION_COLUMNS
MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
TIMESTAMPS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
CHUNK_ROWS = 5_000
#: FOCUS ChargeFrequency values, matched case-insensitively (exports write `Usage-based` too)
FREQUENCIES = {v.lower(): v for v in ("One-Time", "Recurring", "Usage-Based")} | {
    "usagebased": "Usage-Based",
    "onetime": "One-Time",
}
QUERY = """
SELECT record FROM pricing.v_cost_lines
WHERE ($1::timestamptz IS NULL OR charge_period_start >= $1)
  AND ($2::timestamptz IS NULL OR charge_period_start < $2)
ORDER BY charge_period_start, record_id
"""

if TYPE_CHECKING:
    from pyarrow.parquet import ParquetWriter


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


def _month_bounds(ts: str) -> tuple[str, str]:
    # the contract allows years 1 to 9999: strftime writes year 999 as "999" (not RFC 3339),
    # and the month after December 9999 does not exist (its end is the last instant instead)
    start = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    first = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if (first.year, first.month) == (9999, 12):
        return _stamp(first), "9999-12-31T23:59:59Z"
    return _stamp(first), _stamp((first + timedelta(days=32)).replace(day=1))


def _stamp(value: datetime) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value:%H:%M:%S}Z"


def focus_row(record: dict[str, Any]) -> dict[str, Any]:
    """One FOCUS 1.2 row from a PricedRecord v1 (JSON), mandatory columns filled."""
    row: dict[str, Any] = {c: record.get(c) for c in COLUMNS}
    billed = row["BilledCost"]
    if billed is not None:
        for column in ("EffectiveCost", "ListCost", "ContractedCost"):
            if row[column] is None:
                row[column] = billed
    if not row["BillingPeriodStart"] or not row["BillingPeriodEnd"]:
        row["BillingPeriodStart"], row["BillingPeriodEnd"] = _month_bounds(row["ChargePeriodStart"])
    row["BillingAccountName"] = row["BillingAccountName"] or row["BillingAccountId"]
    if row["SubAccountId"] and not row["SubAccountName"]:
        row["SubAccountName"] = row["SubAccountId"]
    row["InvoiceIssuerName"] = row["InvoiceIssuerName"] or row["ProviderName"]
    row["PublisherName"] = row["PublisherName"] or row["ProviderName"]
    row["ServiceCategory"] = row["ServiceCategory"] or "Other"
    frequency = FREQUENCIES.get((row["ChargeFrequency"] or "").lower().replace("_", "-"))
    if frequency is None:
        frequency = "Usage-Based" if row["ChargeCategory"] == "Usage" else "One-Time"
    row["ChargeFrequency"] = frequency
    if (
        row["ChargeCategory"] == "Usage"
        and not row["PricingCategory"]
        and row["PricingQuantity"] is not None
    ):
        row["PricingCategory"] = "Standard"
    if row["ConsumedQuantity"] is None and row["ChargeCategory"] == "Usage":
        row["ConsumedUnit"] = None  # FOCUS: unit only with a quantity
    tags = row["Tags"]
    row["Tags"] = orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode() if tags else None
    return row


class Writer:
    """CSV (optionally gzip) or Parquet, written chunk by chunk."""

    def __init__(self, path: Path, fmt: ExportFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.rows = 0
        self.totals: dict[str, Decimal] = {}
        if fmt == ExportFormat.CSV:
            # kept open across write() calls; close() closes it
            raw = (
                gzip.open(path, "wt", newline="")  # noqa: SIM115
                if path.suffix == ".gz"
                else path.open("w", newline="")
            )
            self._fh: io.TextIOBase = raw  # type: ignore[assignment]
            self._csv = csv.DictWriter(raw, fieldnames=COLUMNS, extrasaction="ignore")
            self._csv.writeheader()
        self._parquet: ParquetWriter | None = None  # parquet: opened with the first chunk

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["BilledCost"] is not None:
                currency = row["BillingCurrency"]
                self.totals[currency] = self.totals.get(currency, Decimal(0)) + Decimal(
                    row["BilledCost"]
                )
        self.rows += len(rows)
        if self.fmt == ExportFormat.CSV:
            self._csv.writerows(rows)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([_typed(r) for r in rows], schema=_parquet_schema())
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self.fmt == ExportFormat.CSV:
            self._fh.close()
        else:
            if self._parquet is None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                self._parquet = pq.ParquetWriter(self.path, _parquet_schema())
                self._parquet.write_table(pa.Table.from_pylist([], schema=_parquet_schema()))
            self._parquet.close()


DECIMALS = (
    *MONEY,
    "ListUnitPrice",
    "ContractedUnitPrice",
    "ConsumedQuantity",
    "PricingQuantity",
    "CommitmentDiscountQuantity",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
)


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """Parquet keeps types: exact decimals and UTC timestamps."""
    out = dict(row)
    for column in DECIMALS:
        if out.get(column) is not None:
            out[column] = Decimal(str(out[column])).quantize(Decimal("1e-18"))
    for column in TIMESTAMPS:
        if out.get(column):
            out[column] = datetime.fromisoformat(out[column].replace("Z", "+00:00"))
    return out


def _parquet_schema():  # noqa: ANN202
    import pyarrow as pa

    fields = []
    for column in COLUMNS:
        if column in TIMESTAMPS:
            fields.append(pa.field(column, pa.timestamp("us", tz="UTC")))
        elif column in DECIMALS:
            fields.append(pa.field(column, pa.decimal128(38, 18)))
        else:
            fields.append(pa.field(column, pa.string()))
    return pa.schema(fields)


async def export_focus(
    database_url: str, start: date | None, end: date | None, writer: Writer
) -> None:
    from finfocus.db import reader

    async with reader(database_url) as conn, conn.transaction(readonly=True):
        chunk: list[dict[str, Any]] = []
        async for rec in conn.cursor(QUERY, _ts(start), _ts(end), prefetch=CHUNK_ROWS):
            record = rec["record"]
            if isinstance(record, str):
                record = orjson.loads(record)
            chunk.append(focus_row(record))
            if len(chunk) >= CHUNK_ROWS:
                writer.write(chunk)
                chunk = []
        if chunk:
            writer.write(chunk)


def _ts(day: date | None) -> datetime | None:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (YYYY-MM-DD)", 2)


export_app = typer.Typer(
    no_args_is_help=True, help="Export the platform's cost data in open formats."
)


@export_app.command("focus")
def focus(
    file: Path | None = typer.Option(
        None, "--file", help="file to write: .csv, .csv.gz or .parquet"
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="format: csv or parquet (default: from the file name). A file name here still works for one "
        "release, with a warning: use --file",
    ),
    start: str | None = typer.Option(
        None, "--from", help="first day (inclusive), YYYY-MM-DD, on ChargePeriodStart"
    ),
    end: str | None = typer.Option(None, "--to", help="last day (exclusive), YYYY-MM-DD"),
    fmt: ExportFormat | None = typer.Option(
        None, "--format", hidden=True, help="same as --output csv|parquet"
    ),
) -> None:
    """Write priced cost lines as a FOCUS 1.2 file (CSV or Parquet), window [from, to)."""
    from finfocus.settings import FinFocusSettings

    day_from, day_to = _parse_day(start, "--from"), _parse_day(end, "--to")
    if day_from and day_to and day_to <= day_from:
        fail("--to must be after --from", 2)
    target, fmt = _target(file, output, fmt)
    chosen = fmt or (ExportFormat.PARQUET if target.suffix == ".parquet" else ExportFormat.CSV)
    writer = Writer(target, chosen)
    try:
        run(export_focus(FinFocusSettings().database, day_from, day_to, writer))
    finally:
        writer.close()
    totals = ", ".join(f"{v} {c}" for c, v in sorted(writer.totals.items())) or "nothing"
    err_console.print(f"wrote {writer.rows} FOCUS 1.2 rows to {output} (billed: {totals})")


def _target(
    file: Path | None, output: str | None, fmt: ExportFormat | None
) -> tuple[Path, ExportFormat | None]:
    """`-o/--output` is the format like everywhere else and `--file` the path; `--output FILE`
    (the earlier spelling) still works for one release with a warning."""
    formats = {f.value for f in ExportFormat}
    if output is not None and output.lower() in formats:
        fmt = ExportFormat(output.lower())
    elif output is not None:
        if output.lower() in {"json", "ndjson", "table"}:
            fail(
                f"--output {output}: export focus writes csv or parquet; the path goes in --file", 2
            )
        if file is not None:
            fail(f"--output {output!r} is not a format (csv or parquet) and --file is given", 2)
        err_console.print(
            f"[yellow]warning:[/yellow] --output FILE is deprecated; use --file {output} "
            "(-o/--output is the format: csv or parquet)",
            soft_wrap=True,
        )
        file = Path(output)
    if file is None:
        fail("--file is required: the .csv, .csv.gz or .parquet file to write", 2)
    return file, fmt


def register(app: typer.Typer) -> None:
    """Add `finfocus export` to the `finfocus` app."""
    app.add_typer(export_app, name="export")
