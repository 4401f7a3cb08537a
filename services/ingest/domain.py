"""Pure import logic: normalised rows become BillingRecord v1 payloads, tallied for the job.

No I/O here. `RecordBuilder` turns a checked batch (see `formats.common.finish`) into the
Kafka key and JSON value of each accepted row and the reason of each refused one;
`JobTally` adds up what the job report and the reconciliation need.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import polars as pl

from schemas.ingest import derive_record_id
from services.ingest.formats.common import ERROR, SCOPE

ROW = "_row"
FILE_COLUMN = "_file"


@dataclass
class Rejection:
    """One refused row: where it was and why."""

    file: str
    row: int
    reason: str
    original: dict[str, Any]


@dataclass
class Outgoing:
    """One accepted row ready to publish."""

    key: bytes
    value: bytes
    record_id: str


@dataclass
class JobTally:
    """Counts and totals of one import job (per currency: money is never added across)."""

    rows_read: int = 0
    rows_published: int = 0
    rows_rejected: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    scopes: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)

    def add_totals(self, totals: dict[str, Decimal]) -> None:
        for currency, amount in totals.items():
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + amount

    @property
    def billing_periods(self) -> list[str]:
        return sorted({scope.rsplit(":", 1)[-1] for scope in self.scopes})

    def summary(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_published": self.rows_published,
            "rows_rejected": self.rows_rejected,
            "totals": {c: money_text(v) for c, v in sorted(self.totals.items())},
            "providers": sorted(self.providers),
            "accounts": sorted(self.accounts),
            "billing_periods": self.billing_periods,
            "billing_scopes": sorted(self.scopes),
            "rejection_reasons": dict(self.reasons.most_common()),
        }


def money_text(value: Decimal) -> str:
    """Exact decimal text without exponent or needless trailing zeros (`12.5`, `0`)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _tags(value: str) -> dict[str, str]:
    parsed = orjson.loads(value)
    if isinstance(parsed, list) and all(isinstance(i, dict) and "key" in i for i in parsed):
        parsed = {i["key"]: i.get("value") for i in parsed}  # a map as key/value pairs
    if not isinstance(parsed, dict):
        raise ValueError("Tags is not a JSON object")
    out: dict[str, str] = {}
    for key, item in parsed.items():
        if item is None:
            continue
        out[str(key)] = item if isinstance(item, str) else orjson.dumps(item).decode()
    return out


class RecordBuilder:
    """Builds the records of one file of one job. Identical rows within the file get
    successive occurrence numbers, so genuine duplicates in a bill are not collapsed."""

    def __init__(self, *, file: str, job_id: str, version: int) -> None:
        self.file = file
        self.job_id = job_id
        self.version = version
        self._seen: set[int] = set()
        self._repeats: Counter[str] = Counter()

    def _record_id(self, row: dict[str, Any]) -> str:
        first = derive_record_id(row)
        marker = int(first[:16], 16)
        if marker not in self._seen:
            self._seen.add(marker)
            return first
        self._repeats[first] += 1
        return derive_record_id(row, self._repeats[first])

    def build(self, batch: pl.DataFrame, tally: JobTally) -> tuple[list[Outgoing], list[Rejection]]:
        """Payloads of the accepted rows and reasons of the refused ones; updates `tally`."""
        names = [c for c in batch.columns if not c.startswith("_")]
        outgoing: list[Outgoing] = []
        rejected: list[Rejection] = []
        accepted_mask: list[bool] = []
        dumps = orjson.dumps
        tags_at = names.index("Tags") if "Tags" in names else -1
        columns = [*names, ROW, SCOPE, ERROR]
        for values in batch.select(columns).iter_rows():
            row_number, scope, error = values[-3], values[-2], values[-1]
            row = {k: v for k, v in zip(names, values) if v is not None}
            if error is None and tags_at >= 0 and values[tags_at] is not None:
                try:
                    row["Tags"] = _tags(values[tags_at])
                except (ValueError, orjson.JSONDecodeError) as exc:
                    error = f"Tags is not a JSON object of strings: {exc}"
            if error is not None:
                rejected.append(Rejection(self.file, row_number, error, row))
                tally.reasons[error.split(":", 1)[0]] += 1
                accepted_mask.append(False)
                continue
            row["x_BillingScope"] = scope
            record_id = self._record_id(row)
            row["x_RecordId"] = record_id
            row["x_BillingScopeVersion"] = self.version
            row["x_ImportJobId"] = self.job_id
            key = f"{row['ProviderName']}:{row.get('SubAccountId') or row['BillingAccountId']}"
            outgoing.append(Outgoing(key.encode(), dumps(row), record_id))
            accepted_mask.append(True)
        tally.rows_read += batch.height
        tally.rows_published += len(outgoing)
        tally.rows_rejected += len(rejected)
        if outgoing:
            accepted = batch.filter(pl.Series(accepted_mask))
            tally.add_totals(currency_totals(accepted))
            tally.scopes.update(accepted.get_column(SCOPE).unique().to_list())
            tally.accounts.update(accepted.get_column("BillingAccountId").unique().to_list())
            tally.providers.update(accepted.get_column("ProviderName").unique().to_list())
        return outgoing, rejected


def currency_totals(batch: pl.DataFrame) -> dict[str, Decimal]:
    """Exact BilledCost total per BillingCurrency (rows without a billed cost add nothing)."""
    grouped = batch.group_by("BillingCurrency").agg(pl.col("_dec_BilledCost").sum())
    return {
        currency: Decimal(str(total)) if total is not None else Decimal(0)
        for currency, total in grouped.iter_rows()
    }
