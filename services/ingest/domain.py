"""Pure import logic: normalised rows become BillingRecord v1 payloads, tallied for the job.

No I/O here. `RecordBuilder` turns a checked batch (see `formats.common.finish`) into the
Kafka key and JSON value of each accepted row and the reason of each refused one;
`JobTally` adds up what the job report and the reconciliation need.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import polars as pl

from services.ingest.formats.common import DECIMAL_COLUMNS, ERROR, SCOPE, TIMESTAMP_COLUMNS

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
class Built:
    """The accepted rows of a batch ready to publish (parallel lists) and the refused ones."""

    keys: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    scopes: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.values)

    def records(self) -> list[tuple[bytes, bytes]]:
        return list(zip(self.keys, self.values))


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


def canonical_tags(values: list[str | None]) -> tuple[list[str | None], list[str | None]]:
    """Each Tags text as canonical JSON (sorted keys, string values) or null, and the reason
    for the ones that are not a JSON object of strings."""
    canon: list[str | None] = []
    errors: list[str | None] = []
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
    for value in values:
        if value is None:
            canon.append(None)
            errors.append(None)
            continue
        try:
            tags = _tags(value)
        except (ValueError, orjson.JSONDecodeError) as exc:
            canon.append(None)
            errors.append(f"Tags is not a JSON object of strings: {exc}")
            continue
        canon.append(dumps(tags, option=sort).decode() if tags else None)
        errors.append(None)
    return canon, errors


#: columns `finish` wrote or checked itself (timestamps, numbers, codes): never need escaping
SAFE_TEXT = frozenset(
    (*TIMESTAMP_COLUMNS, *DECIMAL_COLUMNS, "BillingCurrency", "ChargeCategory")
)
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def content_json(batch: pl.DataFrame, names: list[str]) -> pl.Expr:
    """The row as compact JSON with sorted keys and without nulls: byte for byte what
    `schemas.ingest.derive_record_id` hashes (Tags holds canonical JSON text).

    Columns with quotes, backslashes or control characters in this batch go through
    polars' JSON encoder (escaping like orjson); the others are quoted as they are."""
    ordered = sorted(names)
    plain = [n for n in ordered if n != "Tags" and n not in SAFE_TEXT]
    special = dict.fromkeys(ordered, False)
    if plain:
        special.update(zip(plain, batch.select([pl.col(n).str.contains(_NEEDS_ESCAPE).any() for n in plain]).row(0)))
    pieces = []
    for name in ordered:
        col = pl.col(name)
        if name == "Tags":
            piece = pl.concat_str(pl.lit('"Tags":'), col)
        elif special[name]:
            piece = pl.struct(col).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
            piece = pl.when(col.is_not_null()).then(piece)
        else:
            piece = pl.concat_str(pl.lit(f'"{name}":"'), col, pl.lit('"'))
        pieces.append(piece)
    return pl.concat_str(pl.lit("{"), pl.concat_str(pieces, separator=",", ignore_nulls=True), pl.lit("}"))


class SeenMarkers:
    """64-bit row markers seen so far in a file, 8 bytes each (a Python set would take ~70):
    sorted numpy runs merged like an LSM tree, so a 5-million-row file stays small."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, markers: np.ndarray) -> np.ndarray:
        """Adds `markers`; True where a marker was seen before (earlier, or earlier in this batch)."""
        unique, first = np.unique(markers, return_index=True)
        repeated = np.ones(len(markers), dtype=bool)
        repeated[first] = False
        known = np.zeros(len(unique), dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, unique).clip(max=len(run) - 1)
            known |= run[at] == unique
        if known.any():
            repeated[first[known]] = True
        if not known.all():  # an empty run would break the searches of the next batches
            self._runs.append(unique[~known])
        while len(self._runs) > 1 and len(self._runs[-1]) * 2 >= len(self._runs[-2]):
            last = self._runs.pop()
            self._runs[-1] = np.union1d(self._runs[-1], last)
        return repeated

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)


class RecordBuilder:
    """Builds the records of one file of one job. Identical rows within the file get
    successive occurrence numbers, so genuine duplicates in a bill are not collapsed.

    Everything but the tags check and the hashing runs vectorised in polars."""

    def __init__(self, *, file: str, job_id: str, version: int) -> None:
        self.file = file
        self.job_id = job_id
        self.version = version
        self._seen = SeenMarkers()
        self._repeats: Counter[str] = Counter()

    def _record_ids(self, contents: list[bytes]) -> list[str]:
        sha256 = hashlib.sha256
        ids = [sha256(c).hexdigest()[:32] for c in contents]
        repeated = self._seen.add(np.array([int(i[:16], 16) for i in ids], dtype=np.uint64))
        for n in np.flatnonzero(repeated):
            first = ids[n]
            self._repeats[first] += 1
            digest = sha256(contents[n])
            digest.update(f"#{self._repeats[first]}".encode())
            ids[n] = digest.hexdigest()[:32]
        return ids

    def build(self, batch: pl.DataFrame, tally: JobTally) -> Built:
        """Payloads of the accepted rows and reasons of the refused ones; updates `tally`."""
        if "Tags" in batch.columns:
            # distinct tag sets are few (per resource): canonicalise each once
            distinct = batch.get_column("Tags").drop_nulls().unique().to_list()
            canon, errors = canonical_tags(distinct)
            batch = batch.with_columns(
                pl.col("Tags").replace_strict(distinct, canon, default=None, return_dtype=pl.Utf8),
                pl.coalesce(
                    pl.col(ERROR),
                    pl.col("Tags").replace_strict(distinct, errors, default=None, return_dtype=pl.Utf8),
                ).alias(ERROR),
            )
        failed = batch.get_column(ERROR).is_not_null()
        built = Built()
        if failed.any():
            names_all = [c for c in batch.columns if not c.startswith("_")]
            for row in batch.filter(failed).select([*names_all, ROW, ERROR]).iter_rows(named=True):
                reason = row.pop(ERROR)
                number = row.pop(ROW)
                original = {k: v for k, v in row.items() if v is not None}
                built.rejections.append(Rejection(self.file, number, reason, original))
                tally.reasons[reason.split(":", 1)[0]] += 1
            batch = batch.filter(~failed)
        tally.rows_read += len(failed)
        tally.rows_rejected += len(built.rejections)
        if batch.height == 0:
            return built
        batch = batch.with_columns(pl.col(SCOPE).alias("x_BillingScope"))
        names = [c for c in batch.columns if not c.startswith("_") and batch.schema[c] == pl.Utf8]
        sub = pl.col("SubAccountId") if "SubAccountId" in batch.columns else pl.lit(None, pl.Utf8)
        frame = batch.select(
            content_json(batch, names).cast(pl.Binary).alias("content"),
            pl.concat_str(pl.col("ProviderName"), pl.lit(":"), pl.coalesce(sub, pl.col("BillingAccountId")))
            .cast(pl.Binary)
            .alias("key"),
        )
        content = frame.get_column("content")
        ids = self._record_ids(content.to_list())
        tail = f',"x_BillingScopeVersion":{int(self.version)},"x_ImportJobId":{orjson.dumps(self.job_id).decode()}}}'
        values = pl.concat_str(
            content.cast(pl.Utf8).str.strip_suffix("}"),
            pl.lit(',"x_RecordId":"'), pl.Series("i", ids), pl.lit('"' + tail),
        )
        built.keys = frame.get_column("key").to_list()
        built.values = pl.select(values.cast(pl.Binary)).to_series().to_list()
        built.record_ids = ids
        built.scopes = set(batch.get_column(SCOPE).unique().to_list())
        tally.rows_published += batch.height
        tally.add_totals(currency_totals(batch))
        tally.scopes.update(built.scopes)
        tally.accounts.update(batch.get_column("BillingAccountId").unique().to_list())
        tally.providers.update(batch.get_column("ProviderName").unique().to_list())
        return built


def currency_totals(batch: pl.DataFrame) -> dict[str, Decimal]:
    """Exact BilledCost total per BillingCurrency (rows without a billed cost add nothing)."""
    grouped = batch.group_by("BillingCurrency").agg(pl.col("_dec_BilledCost").sum())
    return {
        currency: Decimal(str(total)) if total is not None else Decimal(0)
        for currency, total in grouped.iter_rows()
    }
