"""Pure helpers of the console's pages: money for people, the explorer's query, its table.

No framework here, so the unit tests check them without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

CENT = Decimal("0.01")
UNTAGGED = "(untagged)"
BUCKETS = ("daily", "monthly")
#: the explorer's group-by choices besides tag:KEY (the API's names)
DIMENSIONS = (
    "provider",
    "service",
    "account",
    "billing-account",
    "region",
    "resource",
    "type",
    "sku",
    "category",
    "service-category",
    "currency",
    "price-source",
)
METRICS = ("billed", "effective", "list", "contracted")


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Any, currency: str | None = None) -> str:
    """`5843.674` -> `5,843.67 USD`: cents rounded half up, thousands separated."""
    amount = decimal(value)
    if amount is None:
        return "–"
    text = f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"
    return f"{text} {currency}" if currency else text


def totals_of(summary: Mapping[str, Any] | None) -> list[dict]:
    """The `summary` of a cost document as [{currency, totalCost}] (one or several currencies)."""
    if not summary:
        return []
    if summary.get("totals") is not None:
        return [dict(t) for t in summary["totals"]]
    if summary.get("currency") is None and decimal(summary.get("totalCost")) in (None, Decimal(0)):
        return []
    return [{"currency": summary.get("currency"), "totalCost": summary.get("totalCost")}]


def totals_text(summary: Mapping[str, Any] | None) -> str:
    """What the data-testid total shows: each currency's total, never added across."""
    totals = totals_of(summary)
    if not totals:
        return money(0)
    return " · ".join(money(t["totalCost"], t["currency"]) for t in totals)


def change_pct(now: Any, before: Any) -> Decimal | None:
    a, b = decimal(before), decimal(now)
    if a is None or b is None or a == 0:
        return None
    return ((b - a) / abs(a) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def share_pct(part: Any, whole: Any) -> Decimal | None:
    """`part` as a percentage of `whole` (a budget's burn, a row's share), one decimal."""
    a, b = decimal(part), decimal(whole)
    if a is None or b is None or b == 0:
        return None
    return (a / b * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def month_to_date(today: date | None = None) -> tuple[date, date]:
    """[first of this month, tomorrow): the API's default window, in UTC."""
    today = today or datetime.now(UTC).date()
    return today.replace(day=1), today + timedelta(days=1)


@dataclass
class ExplorerQuery:
    """The explorer's query as the URL carries it: `/costs?from&to&group_by&filter&metric`.

    `group_by` may name up to two dimensions (tag:KEY included) and one time bucket
    (`daily` or `monthly`) for the chart; the table sums over the bucket.
    """

    start: str
    end: str
    dimensions: list[str] = field(default_factory=list)
    bucket: str | None = "daily"
    filters: list[str] = field(default_factory=list)
    metric: str = "billed"
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], filters: Iterable[str], today: date | None = None
    ) -> ExplorerQuery:
        first, tomorrow = month_to_date(today)
        errors: list[str] = []
        start = _date_text(params.get("from"), first, "from", errors)
        end = _date_text(params.get("to"), tomorrow, "to", errors)
        dims: list[str] = []
        bucket: str | None = None
        has_group_by = "group_by" in params
        names = [n.strip() for n in str(params.get("group_by") or "").split(",") if n.strip()]
        for extra in ("dim1", "dim2"):  # the form's two selects
            if params.get(extra):
                names.append(str(params[extra]).strip())
        for name in names:
            if name in BUCKETS:
                bucket = bucket or name
            elif name in dims:
                continue
            elif len(dims) >= 2:
                errors.append(f"at most two dimensions: {name!r} ignored")
            else:
                dims.append(name)
        granularity = params.get("granularity")
        if granularity in BUCKETS:
            bucket = str(granularity)
        elif granularity == "none":
            bucket = None
        elif bucket is None:
            bucket = "daily"
        if not has_group_by and not dims and "dim1" not in params:
            dims = ["service"]
        metric = str(params.get("metric") or "billed")
        if metric not in METRICS:
            errors.append(f"unknown metric {metric!r}: billed used")
            metric = "billed"
        return cls(start, end, dims, bucket, [f for f in filters if f.strip()], metric, errors)

    @property
    def group_by(self) -> list[str]:
        return ([self.bucket] if self.bucket else []) + self.dimensions

    def api_params(self) -> list[tuple[str, str]]:
        params = [("from", self.start), ("to", self.end), ("metric", self.metric)]
        if self.group_by:
            params.append(("group_by", ",".join(self.group_by)))
        params += [("filter", f) for f in self.filters]
        return params

    def url(self, path: str = "/costs") -> str:
        return f"{path}?{urlencode(self.api_params())}"


def _date_text(value: Any, default: date, name: str, errors: list[str]) -> str:
    if not value:
        return default.isoformat()
    text = str(value)
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        errors.append(f"{name} {text!r} is not a date (YYYY-MM-DD)")
        return default.isoformat()
    return text


def group_label(value: Any, name: str) -> str:
    if value is None or value == "":
        return UNTAGGED if name.startswith("tag:") else "(none)"
    return str(value)


def explorer_table(results: list[dict], query: ExplorerQuery, totals: list[dict]) -> list[dict]:
    """One row per (dimensions, currency), summed over the time bucket, largest first, with
    its share of its currency's total."""
    sums: dict[tuple, Decimal] = {}
    for r in results:
        group = r.get("group") or {}
        key = tuple(group_label(group.get(d), d) for d in query.dimensions) + (r.get("currency"),)
        sums[key] = sums.get(key, Decimal(0)) + (decimal(r.get("cost")) or Decimal(0))
    by_currency = {t["currency"]: decimal(t["totalCost"]) or Decimal(0) for t in totals}
    rows = []
    for key, cost in sums.items():
        share = share_pct(cost, by_currency.get(key[-1]))
        rows.append({"labels": list(key[:-1]), "currency": key[-1], "cost": cost, "share": share})
    rows.sort(key=lambda r: (str(r["currency"]), -r["cost"], r["labels"]))
    return rows


def chart_series(results: list[dict], query: ExplorerQuery, limit: int = 12) -> dict:
    """The explorer's stacked chart: x = the buckets, one series per group (the largest
    `limit`, the rest as "other"), for the first currency only (never stack currencies)."""
    if not query.bucket:
        return {"x": [], "series": [], "currency": None}
    currencies = sorted({r.get("currency") or "" for r in results})
    currency = currencies[0] if currencies else None
    buckets: set[str] = set()
    cells: dict[str, dict[str, Decimal]] = {}
    for r in results:
        if (r.get("currency") or "") != (currency or ""):
            continue
        group = r.get("group") or {}
        x = str(group.get(query.bucket))
        name = " / ".join(group_label(group.get(d), d) for d in query.dimensions) or "total"
        buckets.add(x)
        cells.setdefault(name, {})
        cells[name][x] = cells[name].get(x, Decimal(0)) + (decimal(r.get("cost")) or Decimal(0))
    ranked = sorted(cells, key=lambda n: -sum(cells[n].values()))
    keep, rest = ranked[:limit], ranked[limit:]
    xs = sorted(buckets)
    series = [{"name": n, "data": [str(cells[n].get(x, Decimal(0))) for x in xs]} for n in keep]
    if rest:
        series.append(
            {
                "name": f"other ({len(rest)})",
                "data": [
                    str(sum((cells[n].get(x, Decimal(0)) for n in rest), Decimal(0))) for x in xs
                ],
            }
        )
    return {"x": xs, "series": series, "currency": currency}


def csv_rows(table: list[dict], query: ExplorerQuery) -> list[list[str]]:
    header = [*query.dimensions, "currency", "cost", "share_pct"]
    return [header] + [
        [
            *r["labels"],
            r["currency"] or "",
            format(r["cost"], "f"),
            "" if r["share"] is None else format(r["share"], "f"),
        ]
        for r in table
    ]
