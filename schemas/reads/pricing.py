"""Reads of pricing's `v_cost_lines`: `finfocus cost actual` and the api's `costs` and
`insights/summary` build the same parameterised SQL here.

Every value a user types is bound as a query parameter; group-by and filter names go through
the whitelists below and never reach SQL as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from schemas.reads.vocab import canonical

VIEW = "pricing.v_cost_lines"

#: --group-by / --filter names -> SQL expressions over the view (the only SQL users can pick)
DIMENSIONS: dict[str, str] = {
    "provider": "provider",
    "service": "service_name",
    "account": "coalesce(sub_account_id, billing_account_id)",
    "billing-account": "billing_account_id",
    "region": "region_id",
    "resource": "resource_id",
    "type": "resource_type",
    "sku": "sku_id",
    "category": "charge_category",
    "service-category": "service_category",
    "currency": "billing_currency",
    "price-source": "price_source",
}
#: time buckets (group-by only), UTC like FOCUS periods
BUCKETS: dict[str, str] = {
    "daily": "to_char(charge_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "monthly": "to_char(charge_period_start AT TIME ZONE 'UTC', 'YYYY-MM')",
}
#: --metric -> FOCUS cost column
METRICS: dict[str, str] = {
    "billed": "billed_cost",
    "effective": "effective_cost",
    "list": "list_cost",
    "contracted": "contracted_cost",
}


class UsageError(ValueError):
    """A bad option value: exit code 2."""


@dataclass
class Query:
    """SQL text built only from whitelisted fragments, plus the bound user values."""

    params: list[Any] = field(default_factory=list)

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


def parse_group_by(text: str | None) -> list[str]:
    """`provider,tag:team,daily` -> validated names (order kept, duplicates dropped)."""
    names: list[str] = []
    for raw in (text or "").split(","):
        name = raw.strip()
        if not name:
            continue
        if name.startswith("tag:"):
            if not name[4:]:
                raise UsageError("--group-by tag: needs a tag key, e.g. tag:team")
        elif name not in DIMENSIONS and name not in BUCKETS:
            allowed = ", ".join([*DIMENSIONS, *BUCKETS, "tag:KEY"])
            raise UsageError(
                f"unknown --group-by {name!r}; use a comma-separated list of {allowed}"
            )
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class Filter:
    key: str  # dimension name or "tag:KEY"
    value: str
    negate: bool = False


def parse_filter(text: str) -> Filter:
    """`KEY=VALUE`, `KEY!=VALUE`, `tag:KEY=VALUE` or `tag:KEY!=VALUE`."""
    if "!=" in text:
        key, _, value = text.partition("!=")
        negate = True
    elif "=" in text:
        key, _, value = text.partition("=")
        negate = False
    else:
        raise UsageError(f"--filter {text!r} is not KEY=VALUE or KEY!=VALUE")
    key = key.strip()
    if key.startswith("tag:"):
        if not key[4:]:
            raise UsageError(f"--filter {text!r}: tag: needs a key")
    elif key not in DIMENSIONS:
        raise UsageError(
            f"unknown --filter key {key!r}; use one of {', '.join(DIMENSIONS)} or tag:KEY"
        )
    return Filter(key, canonical(key, value), negate)


def parse_when(text: str | None, option: str) -> datetime | None:
    """A date (midnight UTC) or an RFC 3339 time."""
    if not text:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date (YYYY-MM-DD) or an RFC 3339 time"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def expression(name: str, q: Query) -> str:
    if name.startswith("tag:"):
        return f"(tags ->> {q.bind(name[4:])}::text)"
    return DIMENSIONS.get(name) or BUCKETS[name]


def where_clause(
    q: Query, start: datetime | None, end: datetime | None, filters: list[Filter]
) -> str:
    """`WHERE` over the half-open window [start, end) on charge_period_start and the filters:
    equal filters on one key are alternatives (OR), everything else must all hold (AND).
    Values compare case-insensitively (`provider=aws` is `AWS`, see `schemas.reads.vocab`)."""
    conds: list[str] = []
    if start is not None:
        conds.append(f"charge_period_start >= {q.bind(start)}")
    if end is not None:
        conds.append(f"charge_period_start < {q.bind(end)}")
    equal: dict[str, list[str]] = {}
    for f in filters:
        if f.negate:
            conds.append(
                f"lower({expression(f.key, q)}) IS DISTINCT FROM {q.bind(f.value.casefold())}::text"
            )
        else:
            equal.setdefault(f.key, []).append(f.value.casefold())
    for key, values in equal.items():
        conds.append(f"lower({expression(key, q)}) = ANY({q.bind(values)}::text[])")
    return ("WHERE " + " AND ".join(conds)) if conds else ""


def actual_queries(
    group_by: list[str],
    metric: str,
    start: datetime | None,
    end: datetime | None,
    filters: list[Filter],
) -> tuple[tuple[str, list[Any]], tuple[str, list[Any]]]:
    """(grouped results query, per-currency totals query), both parameterised."""
    column = METRICS[metric]
    q = Query()
    selects = [f"{expression(name, q)} AS g{i}" for i, name in enumerate(group_by)]
    where = where_clause(q, start, end, filters)
    keys = ", ".join(str(i + 1) for i in range(len(group_by) + 1))
    results = (
        f"SELECT {', '.join([*selects, 'billing_currency AS currency'])}, "
        f"sum({column}) AS cost, count(*) AS lines, count(*) FILTER (WHERE {column} IS NULL) AS unpriced "
        f"FROM {VIEW} {where} GROUP BY {keys} ORDER BY {keys}"
    )
    t = Query()
    totals = (
        f"SELECT billing_currency AS currency, sum({column}) AS cost, count(*) AS lines, "
        f"count(*) FILTER (WHERE {column} IS NULL) AS unpriced "
        f"FROM {VIEW} {where_clause(t, start, end, filters)} GROUP BY 1 ORDER BY 1"
    )
    return (results, q.params), (totals, t.params)


def money(value: Decimal | None) -> str:
    return format(value if value is not None else Decimal(0), "f")


def summary_of(
    totals: list[dict],
    start: datetime | None,
    end: datetime | None,
    metric: str,
    group_by: list[str],
) -> dict:
    """The summary: one currency -> totalCost/currency; several -> totals (never added)."""
    summary: dict[str, Any] = {}
    if len(totals) <= 1:
        summary["totalCost"] = money(totals[0]["cost"] if totals else None)
        summary["currency"] = totals[0]["currency"] if totals else None
    else:
        summary["totals"] = [
            {"currency": t["currency"], "totalCost": money(t["cost"])} for t in totals
        ]
    summary["from"] = start.isoformat().replace("+00:00", "Z") if start else None
    summary["to"] = end.isoformat().replace("+00:00", "Z") if end else None
    summary["metric"] = metric
    summary["groupBy"] = group_by
    summary["lines"] = sum(t["lines"] for t in totals)
    summary["unpriced"] = sum(t["unpriced"] for t in totals)
    return summary


def result_of(row, group_by: list[str]) -> dict:
    return {
        "group": {name: row[f"g{i}"] for i, name in enumerate(group_by)},
        "cost": money(row["cost"]),
        "currency": row["currency"],
    }
