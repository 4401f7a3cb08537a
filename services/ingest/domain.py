"""Pure import logic: normalised rows become BillingRecord v1 payloads, tallied for the job.

No I/O here. `RecordBuilder` turns a checked batch (see `formats.common.finish`) into the
Kafka key and JSON value of each accepted row and the reason of each refused one;
`JobTally` adds up what the job report and the reconciliation need.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# numpy, polars and the formats (polars) are imported where a batch is built, not with this
# module: the ingest service needs the job bookkeeping here at start (Built, JobTally) and
# polars only once it reads a file (about 50 MB of RSS it would otherwise hold idle)

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
    #: per billing scope, the accepted rows and their billed totals per currency
    scope_rows: Counter[str] = field(default_factory=Counter)
    scope_totals: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def add_totals(self, totals: dict[str, Decimal]) -> None:
        for currency, amount in totals.items():
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + amount

    def add_scope(self, scope: str, currency: str, rows: int, total: Decimal) -> None:
        self.scope_rows[scope] += rows
        totals = self.scope_totals.setdefault(scope, {})
        totals[currency] = totals.get(currency, Decimal(0)) + total

    def scope_figures(self) -> dict[str, dict[str, Any]]:
        """`{scope: {"rows": n, "totals": {currency: "text"}}}`, as the job records them."""
        return {
            scope: {
                "rows": self.scope_rows[scope],
                "totals": {
                    c: money_text(v) for c, v in sorted(self.scope_totals.get(scope, {}).items())
                },
            }
            for scope in sorted(self.scope_rows)
        }

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


@cache
def safe_text() -> frozenset[str]:
    """Columns `finish` wrote or checked itself (timestamps, numbers, codes): never need escaping."""
    from services.ingest.formats.common import DECIMAL_COLUMNS, TIMESTAMP_COLUMNS

    return frozenset((*TIMESTAMP_COLUMNS, *DECIMAL_COLUMNS, "BillingCurrency", "ChargeCategory"))


#: what JSON escapes in a string: quote, backslash and the control characters
_NEEDS_ESCAPE = ['"', "\\", *map(chr, range(0x20))]


def _needs_escape(batch: pl.DataFrame, names: list[str]) -> dict[str, bool]:
    """Which columns hold a character JSON escapes somewhere in this batch (one literal
    multi-pattern scan per column, rare hits)."""
    import polars as pl

    if not names:
        return {}
    found = batch.select([pl.col(n).str.contains_any(_NEEDS_ESCAPE).any() for n in names]).row(0)
    return dict(zip(names, found))


def content_json(batch: pl.DataFrame, names: list[str]) -> pl.Expr:
    """The row as compact JSON with sorted keys and without nulls: byte for byte what
    `schemas.ingest.derive_record_id` hashes (Tags holds canonical JSON text).

    One flat concatenation: columns without nulls in this batch are spliced between
    literals; a nullable column is one `"Name":"value"` piece that vanishes when null.
    Commas go after the pieces before the first column that is never null and before the
    pieces after it, so no separator is left over whichever pieces vanish. Columns with
    quotes, backslashes or control characters go through polars' JSON encoder (escaping
    like orjson); the others are quoted as they are."""
    import polars as pl

    ordered = sorted(names)
    nulls = dict(zip(batch.columns, batch.null_count().row(0)))
    present = [n for n in ordered if nulls[n] < batch.height]
    anchor = next((n for n in present if nulls[n] == 0), None)
    if anchor is None:  # no column without nulls (not for accepted rows): pieces and separators
        pieces = [_piece(n, "", "", escape=True) for n in present]
        body = pl.concat_str(pieces, separator=",", ignore_nulls=True)
        return pl.concat_str(pl.lit("{"), body, pl.lit("}"))
    constants = _constants(batch, [n for n in present if not nulls[n]])
    varying = [n for n in present if n not in constants and n != "Tags" and n not in safe_text()]
    special = _needs_escape(batch, varying)
    parts: list[pl.Expr] = []
    text = "{"  # literal text not yet emitted
    after = False
    for name in present:
        lead, trail = ("," if after else ""), ("" if after or name == anchor else ",")
        after = after or name == anchor
        escape = special.get(name, False)
        if name in constants:
            value = constants[name] if name == "Tags" else orjson.dumps(constants[name]).decode()
            text += f'{lead}"{name}":{value}{trail}'
        elif nulls[name]:
            if text:
                parts.append(pl.lit(text))
                text = ""
            parts.append(_piece(name, lead, trail, escape=escape))
        elif escape:
            parts += [pl.lit(text + lead), _escaped(name)]
            text = trail
        else:
            head = f'{lead}"Tags":' if name == "Tags" else f'{lead}"{name}":"'
            parts += [pl.lit(text + head), pl.col(name)]
            text = trail if name == "Tags" else '"' + trail
    parts.append(pl.lit(text + "}"))
    return pl.concat_str(parts, ignore_nulls=True)


def _constants(batch: pl.DataFrame, names: list[str]) -> dict[str, str]:
    """The columns (of those given, which hold no null) with one value in the whole batch,
    and that value: the provider, account, billing period, currency... of a bill repeat on
    every row, and go into the JSON as literal text instead of being copied row by row."""
    import polars as pl

    from services.ingest.formats.common import constant_columns

    constant = constant_columns(batch, names)
    if not constant:
        return {}
    return dict(zip(constant, batch.select([pl.col(n).first() for n in constant]).row(0)))


def _escaped(name: str) -> pl.Expr:
    """`"Name":"value"` with the value escaped by polars' JSON encoder (null stays null)."""
    import polars as pl

    return pl.struct(pl.col(name)).struct.json_encode().str.slice(1).str.strip_suffix("}")


def _piece(name: str, lead: str, trail: str, *, escape: bool) -> pl.Expr:
    """One nullable member with its separators: null when the value is null."""
    import polars as pl

    col = pl.col(name)
    if name == "Tags":
        return pl.concat_str(pl.lit(f'{lead}"Tags":'), col, pl.lit(trail))
    if escape:
        return pl.when(col.is_not_null()).then(
            pl.concat_str(pl.lit(lead), _escaped(name), pl.lit(trail))
        )
    return pl.concat_str(pl.lit(f'{lead}"{name}":"'), col, pl.lit(f'"{trail}'))


class SeenMarkers:
    """64-bit row markers seen so far in a file, 8 bytes each (a Python set would take ~70):
    sorted numpy runs merged like an LSM tree, so a 5-million-row file stays small."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, markers: np.ndarray) -> np.ndarray:
        """Adds `markers`; True where a marker was seen before (earlier, or earlier in this batch)."""
        import numpy as np

        repeated = np.ones(len(markers), dtype=bool)
        if not len(markers):
            return repeated
        order = np.argsort(markers, kind="stable")  # equal markers keep their row order
        ordered = markers[order]
        new = np.empty(len(markers), dtype=bool)
        new[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        unique, first = ordered[new], order[new]
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
            # disjoint sorted runs: the stable sort (timsort) merges them in linear time
            self._runs[-1] = np.sort(np.concatenate((self._runs[-1], last)), kind="stable")
        return repeated

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)


def _hex32(digests: np.ndarray) -> np.ndarray:
    """The first 16 bytes of each sha256 digest (rows of 32 bytes) as 32 lowercase hex digits."""
    import numpy as np

    hex_digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    head = digests[:, :16]
    out = np.empty((len(digests), 32), dtype=np.uint8)
    out[:, 0::2] = hex_digits[head >> 4]
    out[:, 1::2] = hex_digits[head & 15]
    return out


def _sha256_all(texts: pl.Series) -> tuple[bytes, Callable[[int], Any]]:
    """The sha256 digests of every text of the column, concatenated, and a way to get a
    text back by position (for the rare repeats).

    The texts are read as memoryviews of polars' own buffers (string views exported without
    a copy); a column in another layout is copied out as bytes first."""
    import numpy as np
    import polars as pl

    sha256 = hashlib.sha256
    array = texts.to_arrow(compat_level=pl.CompatLevel.newest())
    if str(array.type) in ("string_view", "binary_view") and not array.null_count and len(array):
        _, views_buffer, *data = array.buffers()
        views = np.frombuffer(views_buffer, dtype=np.int32).reshape(-1, 4)[
            array.offset : array.offset + len(array)
        ]
        lengths, index, offsets = views[:, 0], views[:, 2], views[:, 3]
        if lengths.min() > 12:  # texts of 12 bytes or less live inside the view itself
            buffers = [memoryview(b) for b in data]
            ends = offsets + lengths
            digests = b"".join(
                [
                    sha256(buffers[b][o:e]).digest()
                    for b, o, e in zip(index.tolist(), offsets.tolist(), ends.tolist())
                ]
            )
            return digests, lambda n: buffers[index[n]][offsets[n] : ends[n]]
    pieces = texts.cast(pl.Binary).to_list()
    return b"".join([sha256(p).digest() for p in pieces]), pieces.__getitem__


class RecordBuilder:
    """Builds the records of one file of one job. Identical rows within the file get
    successive occurrence numbers, so genuine duplicates in a bill are not collapsed.

    Content JSON, hash and value of each row come from the native builder in one pass
    where it is built (`native=False` forces the other way); otherwise polars writes the
    content, hashlib reads it where polars wrote it, and the ids go in by one more
    concatenation. Both give the same bytes."""

    def __init__(self, *, file: str, job_id: str, version: int, native: bool = True) -> None:
        self.file = file
        self.native = native
        self.job_id = job_id
        self.version = version
        self._seen = SeenMarkers()
        self._repeats: Counter[str] = Counter()
        self._tail = f'","x_BillingScopeVersion":{int(version)},"x_ImportJobId":{orjson.dumps(job_id).decode()}}}'.encode()

    def _payloads(self, batch: pl.DataFrame, names: list[str]) -> tuple[list[str], list[bytes]]:
        """The x_RecordId and the value of each row: natively where the extension is built,
        else with polars and hashlib (the same bytes).

        The id is sha256 of the content JSON; the n-th repeat of a row already seen in this
        file gets sha256 of the content followed by `#n`, so genuine duplicates are kept."""
        import numpy as np

        from services.ingest.native import ID_MEMBER, payloads

        native = payloads(batch, names, self._tail) if self.native else None
        if native is None:
            return self._payloads_polars(batch, names)
        values, ids, markers = native
        cut = len(ID_MEMBER) + 32 + len(self._tail)  # the content JSON is the value up to its id
        for n in np.flatnonzero(self._seen.add(np.frombuffer(markers, dtype=np.uint64))).tolist():
            ids[n] = self._repeat_id(ids[n], values[n][:-cut] + b"}")
            values[n] = values[n][:-cut] + ID_MEMBER + ids[n].encode() + self._tail
        return ids, values

    def _payloads_polars(
        self, batch: pl.DataFrame, names: list[str]
    ) -> tuple[list[str], list[bytes]]:
        import numpy as np
        import polars as pl

        from services.ingest.native import ID_MEMBER

        content = batch.select(content_json(batch, names)).to_series()
        joined, text = _sha256_all(content)
        digests = np.frombuffer(joined, dtype=np.uint8).reshape(-1, 32)
        ids = pl.Series(_hex32(digests).view("S32").ravel()).cast(pl.Utf8).to_list()
        markers = digests[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        for n in np.flatnonzero(self._seen.add(markers)).tolist():
            ids[n] = self._repeat_id(ids[n], text(n))
        values = (
            pl.DataFrame({"content": content, "id": pl.Series(ids, dtype=pl.Utf8)})
            .select(
                pl.concat_str(
                    pl.col("content").str.head(-1),
                    pl.lit(ID_MEMBER.decode()),
                    "id",
                    pl.lit(self._tail.decode()),
                )
            )
            .to_series()
            .cast(pl.Binary)
            .to_list()
        )
        return ids, values

    def _repeat_id(self, first_id: str, content: Any) -> str:
        """The id of another copy of a row whose first copy got `first_id`."""
        self._repeats[first_id] += 1
        digest = hashlib.sha256(content)
        digest.update(f"#{self._repeats[first_id]}".encode())
        return digest.hexdigest()[:32]

    def build(self, batch: pl.DataFrame, tally: JobTally) -> Built:
        """Payloads of the accepted rows and reasons of the refused ones; updates `tally`."""
        import polars as pl

        from services.ingest.formats.common import ERROR, SCOPE

        if "Tags" in batch.columns:
            # distinct tag sets are few (per resource): canonicalise each once
            distinct = batch.get_column("Tags").drop_nulls().unique().to_list()
            canon, errors = canonical_tags(distinct)
            batch = batch.with_columns(
                pl.col("Tags").replace_strict(distinct, canon, default=None, return_dtype=pl.Utf8),
                pl.coalesce(
                    pl.col(ERROR),
                    pl.col("Tags").replace_strict(
                        distinct, errors, default=None, return_dtype=pl.Utf8
                    ),
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
        schema = batch.schema
        names = [c for c in batch.columns if not c.startswith("_") and schema[c] == pl.Utf8]
        sub = pl.col("SubAccountId") if "SubAccountId" in batch.columns else pl.lit(None, pl.Utf8)
        built.keys = (
            batch.select(
                pl.concat_str(
                    pl.col("ProviderName"),
                    pl.lit(":"),
                    pl.coalesce(sub, pl.col("BillingAccountId")),
                ).cast(pl.Binary)
            )
            .to_series()
            .to_list()
        )
        built.record_ids, built.values = self._payloads(batch, names)
        built.scopes = set(batch.get_column(SCOPE).unique().to_list())
        tally.rows_published += batch.height
        for scope, currency, rows, total in scope_totals(batch):
            tally.add_scope(scope, currency, rows, total)
            tally.add_totals({currency: total})
        tally.scopes.update(built.scopes)
        tally.accounts.update(batch.get_column("BillingAccountId").unique().to_list())
        tally.providers.update(batch.get_column("ProviderName").unique().to_list())
        return built


def scope_totals(batch: pl.DataFrame) -> list[tuple[str, str, int, Decimal]]:
    """Rows and exact BilledCost total per billing scope and currency (rows without a billed
    cost add nothing to the total)."""
    import polars as pl

    from services.ingest.formats.common import SCOPE

    grouped = batch.group_by(SCOPE, "BillingCurrency").agg(
        pl.len(), pl.col("_dec_BilledCost").sum()
    )
    return [
        (scope, currency, rows, Decimal(str(total)) if total is not None else Decimal(0))
        for scope, currency, rows, total in grouped.iter_rows()
    ]


#: a file that brings fewer than this share of the rows a scope holds now covers only part of it
PARTIAL_SHARE = Decimal("0.5")


@dataclass
class ScopeChange:
    """One billing scope an import would supersede: what the stored version holds and what
    the new file brings (rows and billed totals per currency)."""

    scope: str
    old_job: str
    old_rows: int
    old_totals: dict[str, str]
    new_rows: int
    new_totals: dict[str, str]

    @property
    def partial(self) -> bool:
        return Decimal(self.new_rows) < Decimal(self.old_rows) * PARTIAL_SHARE

    def line(self) -> str:
        def money(totals: dict[str, str]) -> str:
            return ", ".join(f"{v} {c}" for c, v in sorted(totals.items())) or "0"

        return (
            f"{self.scope}: {self.old_rows} rows, {money(self.old_totals)} (job {self.old_job}) "
            f"-> {self.new_rows} rows, {money(self.new_totals)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "old_job": self.old_job,
            "old_rows": self.old_rows,
            "old_totals": self.old_totals,
            "new_rows": self.new_rows,
            "new_totals": self.new_totals,
            "partial": self.partial,
        }


def scope_changes(
    new: dict[str, dict[str, Any]], old: dict[str, tuple[str, dict[str, Any]]]
) -> list[ScopeChange]:
    """The scopes of `new` (scope figures of this import) that `old` (scope -> the newest
    completed job and its figures for it) already holds, old against new.

    A restated month replaces the whole scope downstream, so a file that brings much less of
    a scope than is stored (a one-row correction for a month) would erase the rest: such a
    change is `partial` and refused unless the user asks to replace the scope."""
    changes = []
    for scope, figures in sorted(new.items()):
        if scope not in old:
            continue
        job, before = old[scope]
        changes.append(
            ScopeChange(
                scope,
                job,
                int(before.get("rows", 0)),
                dict(before.get("totals", {})),
                int(figures["rows"]),
                dict(figures["totals"]),
            )
        )
    return changes
