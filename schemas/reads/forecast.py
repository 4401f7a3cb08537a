"""Reads of the forecast service's `v_forecasts` and `v_budgets`: `finfocus forecast show` and
`budget list`, the api's `forecasts` and `budgets` and the assistant's tools shape the same
documents here."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

from schemas.reads.vocab import matches, no_match_hint

GROUP_KEYS = ("provider", "service", "account", "region", "resource", "type")
BANDS = ("lo_80", "hi_80", "lo_95", "hi_95")


def parse_group_by(text: str) -> list[str]:
    """`provider,service,tag:team` -> keys; raises ValueError on an unknown key."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    for k in keys:
        if k in ("daily", "monthly"):
            raise ValueError(
                f"--group-by {k}: forecasts are daily already; group by dimensions only"
            )
        if k not in GROUP_KEYS and not (k.startswith("tag:") and len(k) > 4):
            raise ValueError(
                f"unknown --group-by key {k!r}: use {', '.join(GROUP_KEYS)} or tag:KEY"
            )
    if len(set(keys)) != len(keys):
        raise ValueError("--group-by names a key twice")
    return keys


def parse_filters(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` and `tag:KEY=VALUE` -> {key: value}."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--filter {item!r}: expected KEY=VALUE")
        parse_group_by(key)
        out[key] = value
    return out


def dims_id(keys) -> str:
    return ",".join(sorted(keys))


def combine(
    group_by: list[str], filters: dict[str, str], rows: list[dict], horizon: int
) -> list[dict]:
    """Stored series rows (one per point) -> forecasts of the requested groups.

    When a filter names a key that is not grouped on, the matching finer series are added up:
    means add, interval half-widths add in quadrature (independent errors).
    """
    series: dict[str, dict] = {}
    for r in rows:
        group = r["group"]
        if not all(matches(k, v, group.get(k)) for k, v in filters.items()):
            continue
        s = series.setdefault(
            r["series_key"],
            {
                "group": group,
                "currency": r["currency"],
                "model": r["model"],
                "trained_through": r["trained_through"],
                "points": [],
            },
        )
        s["points"].append(r)
    out: dict[tuple, dict] = {}
    for s in series.values():
        gkey = (tuple(s["group"].get(k) for k in group_by), s["currency"])
        target = out.setdefault(
            gkey,
            {
                "group": {k: s["group"].get(k) for k in group_by},
                "currency": s["currency"],
                "models": [],
                "trained_through": s["trained_through"],
                "parts": [],
            },
        )
        target["models"].append(s["model"])
        target["trained_through"] = min(target["trained_through"], s["trained_through"])
        target["parts"].append(s["points"])
    results = []
    for (_, currency), t in sorted(
        out.items(), key=lambda kv: tuple(str(x) for x in kv[0][0]) + (kv[0][1],)
    ):
        days: dict[date, dict] = {}
        for part in t["parts"]:
            for p in part:
                if p["day"] <= t["trained_through"]:
                    continue
                d = days.setdefault(
                    p["day"],
                    {"mean": Decimal(0), "lo_80": 0.0, "hi_80": 0.0, "lo_95": 0.0, "hi_95": 0.0},
                )
                d["mean"] += p["mean"]
                for b in BANDS:
                    d[b] += float(p[b] - p["mean"]) ** 2
        points = []
        single = len(t["parts"]) == 1
        for day in sorted(days)[:horizon]:
            d = days[day]
            point = {"date": day.isoformat(), "mean": money(d["mean"])}
            for b in BANDS:
                if single:
                    value = next(p[b] for p in t["parts"][0] if p["day"] == day)
                else:
                    width = Decimal(repr(round(math.sqrt(d[b]), 4)))
                    value = d["mean"] - width if b.startswith("lo") else d["mean"] + width
                point[b] = money(value)
            points.append(point)
        models = sorted(set(t["models"]))
        results.append(
            {
                "group": t["group"],
                "model": models[0] if len(models) == 1 else "sum(" + ",".join(models) + ")",
                "trained_through": t["trained_through"].isoformat(),
                "points": points,
                "currency": currency,
            }
        )
    return results


def money(value: Decimal) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


async def forecasts(conn, group_by: list[str], filters: dict[str, str], horizon: int) -> list[dict]:
    """The forecasts of the requested groups, on an open connection: from the smallest stored
    dimension set that holds every requested key (LookupError: none; HorizonError: beyond the
    stored days; NoMatch: filters matching no series)."""
    wanted = set(group_by) | set(filters)
    available = [
        r["dims"] for r in await conn.fetch("SELECT DISTINCT dims FROM forecast.v_forecasts")
    ]
    exact = dims_id(wanted)
    if exact in available:
        chosen = exact
    else:  # the smallest stored dimension set that holds every requested key
        supersets = [a for a in available if wanted <= set(filter(None, a.split(",")))]
        if not supersets:
            if not available:
                return []
            shown = ", ".join(a or "(total)" for a in sorted(available))
            raise LookupError(f"no forecasts by {exact or '(total)'}; available: {shown}")
        chosen = min(supersets, key=lambda a: (a.count(",") + 1, a))
    rows = await conn.fetch(
        'SELECT series_key, "group", currency, model, trained_through, day, mean, lo_80, hi_80, '
        "lo_95, hi_95 FROM forecast.v_forecasts WHERE dims = $1 ORDER BY series_key, day",
        chosen,
    )
    data = [dict(r) for r in rows]
    check_horizon(data, horizon)
    out = combine(group_by, filters, data, horizon)
    if data and filters and not out:
        key, value = next(iter(filters.items()))
        raise NoMatch(no_match_hint(key, value, {r["group"].get(key) for r in data}))
    return out


def check_horizon(data: list[dict], horizon: int) -> None:
    """Refuse a horizon beyond the stored days, naming the limit (never silently shorter)."""
    ahead: dict[str, int] = {}
    for r in data:
        if r["day"] > r["trained_through"]:
            ahead[r["series_key"]] = ahead.get(r["series_key"], 0) + 1
    stored = max(ahead.values(), default=0)
    if data and horizon > stored:
        raise HorizonError(
            f"--horizon {horizon} is beyond the {stored} days forecast (FINFOCUS_FORECAST_HORIZON); "
            f"use --horizon {stored} or less"
        )


class HorizonError(LookupError):
    """--horizon beyond what the service stored: a usage error (exit 2)."""


class NoMatch(LookupError):
    """Filters that match no stored series: a usage error with the values that exist."""


def public(forecasts: list[dict]) -> list[dict]:
    """The contract shape; `currency` is added only when several currencies are present."""
    several = len({f["currency"] for f in forecasts}) > 1
    keys = ("group", "model", "trained_through", "points") + (("currency",) if several else ())
    return [{k: f[k] for k in keys} for f in forecasts]


async def budget_rows(conn, name: str | None = None) -> list[dict]:
    """Rows of `forecast.v_budgets` (one budget, or all by name), on an open connection."""
    rows = await conn.fetch(
        "SELECT * FROM forecast.v_budgets WHERE $1::text IS NULL OR name = $1 ORDER BY name", name
    )
    return [dict(r) for r in rows]


def budget_public(row: dict) -> dict:
    """A budget row as the CLI, the API and the assistant print it (one shape everywhere)."""
    amount = row["amount"]
    projected = row["projected"]
    return {
        "name": row["name"],
        "amount": amount,
        "currency": row["currency"],
        "period": row["period"],
        "scope": row["scope"],
        "thresholds": row["thresholds"],
        "period_start": row["period_start"],
        "period_end": row["period_end"],
        "trained_through": row["trained_through"],
        "actual_to_date": row["actual_to_date"],
        "projected": projected,
        "projected_lo_95": row["lo_95"],
        "projected_hi_95": row["hi_95"],
        "projected_pct": None
        if projected is None or not amount
        else (projected / amount * 100).quantize(Decimal("0.1")),
        "alerts_this_period": row["alerts_this_period"],
    }
