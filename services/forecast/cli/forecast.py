"""`finfocus forecast show`: stored forecasts from `forecast.v_forecasts`, as a chart or JSON."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    WIDE_OPTION,
    OutputFormat,
    console,
    fail,
    print_json,
    print_ndjson,
    run,
)
from finfocus.cli.vocab import cents, group_label, matches, no_match_hint, share

GROUP_KEYS = ("provider", "service", "account", "region", "resource", "type")
SPARK = "▁▂▃▄▅▆▇█"
BANDS = ("lo_80", "hi_80", "lo_95", "hi_95")

forecast_app = typer.Typer(help="Cost forecasts per dimension with 80 % and 95 % intervals.", no_args_is_help=True)


def parse_group_by(text: str) -> list[str]:
    """`provider,service,tag:team` -> keys; raises ValueError on an unknown key."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    for k in keys:
        if k in ("daily", "monthly"):
            raise ValueError(f"--group-by {k}: forecasts are daily already; group by dimensions only")
        if k not in GROUP_KEYS and not (k.startswith("tag:") and len(k) > 4):
            raise ValueError(f"unknown --group-by key {k!r}: use {', '.join(GROUP_KEYS)} or tag:KEY")
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


def combine(group_by: list[str], filters: dict[str, str], rows: list[dict], horizon: int) -> list[dict]:
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
            {"group": group, "currency": r["currency"], "model": r["model"],
             "trained_through": r["trained_through"], "points": []},
        )
        s["points"].append(r)
    out: dict[tuple, dict] = {}
    for s in series.values():
        gkey = (tuple(s["group"].get(k) for k in group_by), s["currency"])
        target = out.setdefault(
            gkey,
            {"group": {k: s["group"].get(k) for k in group_by}, "currency": s["currency"],
             "models": [], "trained_through": s["trained_through"], "parts": []},
        )
        target["models"].append(s["model"])
        target["trained_through"] = min(target["trained_through"], s["trained_through"])
        target["parts"].append(s["points"])
    results = []
    for (_, currency), t in sorted(out.items(), key=lambda kv: tuple(str(x) for x in kv[0][0]) + (kv[0][1],)):
        days: dict[date, dict] = {}
        for part in t["parts"]:
            for p in part:
                if p["day"] <= t["trained_through"]:
                    continue
                d = days.setdefault(p["day"], {"mean": Decimal(0), "lo_80": 0.0, "hi_80": 0.0, "lo_95": 0.0, "hi_95": 0.0})
                d["mean"] += p["mean"]
                for b in BANDS:
                    d[b] += float(p[b] - p["mean"]) ** 2
        points = []
        single = len(t["parts"]) == 1
        for day in sorted(days)[:horizon]:
            d = days[day]
            point = {"date": day.isoformat(), "mean": _money(d["mean"])}
            for b in BANDS:
                if single:
                    value = next(p[b] for p in t["parts"][0] if p["day"] == day)
                else:
                    width = Decimal(repr(round(math.sqrt(d[b]), 4)))
                    value = d["mean"] - width if b.startswith("lo") else d["mean"] + width
                point[b] = _money(value)
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


def _not_ready(exc: Exception) -> str:
    """A clear message for a database the forecast service has not prepared yet."""
    import asyncpg

    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.InvalidSchemaNameError):
        return "no forecasts yet: the forecast service has not started against this database"
    if isinstance(exc, typer.Exit):
        raise exc
    return f"cannot read forecasts: {exc}"


def _money(value: Decimal) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


async def load(group_by: list[str], filters: dict[str, str], horizon: int) -> list[dict]:
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings

    wanted = set(group_by) | set(filters)
    async with reader(FinFocusSettings().database) as conn:
        available = [r["dims"] for r in await conn.fetch("SELECT DISTINCT dims FROM forecast.v_forecasts")]
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


def chart(values: list[Decimal]) -> str:
    """A one-line chart of daily means."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(SPARK[0 if span == 0 else int((v - lo) / span * (len(SPARK) - 1))] for v in values)


def show_table(forecasts: list[dict], group_by: list[str], *, wide: bool = False) -> None:
    """Largest forecast first, with its share of the currency's total; the group, the total
    and its range are never cut, the chart and the model give way on narrow terminals."""
    from finfocus.cli.output import Column, render_table

    currencies = sorted({f["currency"] for f in forecasts})
    days = max((len(f["points"]) for f in forecasts), default=0)
    rows = []
    for f in forecasts:
        means = [Decimal(p["mean"]) for p in f["points"]]
        total = sum(means, Decimal(0))
        lo = sum((Decimal(p["lo_95"]) for p in f["points"]), Decimal(0))
        hi = sum((Decimal(p["hi_95"]) for p in f["points"]), Decimal(0))
        rows.append((f, means, total, lo, hi))
    whole = {c: sum((r[2] for r in rows if r[0]["currency"] == c), Decimal(0)) for c in currencies}
    rows.sort(key=lambda r: (r[0]["currency"], -r[2]))
    columns = [Column(k, kind="key") for k in group_by] + [
        Column("total", kind="money"),
        Column("95 % range", kind="money"),
        Column("share", kind="number"),
        Column("chart", kind="chart", drop=2),
        Column("model", drop=3),
        Column("through", drop=4),
    ] + ([Column("currency", kind="key")] if len(currencies) > 1 else [])
    table_rows = [
        [
            *[group_label(k, f["group"].get(k)) for k in group_by],
            cents(total),
            f"{cents(lo)} - {cents(hi)}",
            share(total, whole[f["currency"]]),
            chart(means[:31]),
            f["model"],
            f["trained_through"],
            *([f["currency"]] if len(currencies) > 1 else []),
        ]
        for f, means, total, lo, hi in rows
    ]
    render_table(
        columns, table_rows, wide=wide,
        title=f"Forecast, next {days} days ({', '.join(currencies)}): total and 95 % range",
    )


def public(forecasts: list[dict]) -> list[dict]:
    """The contract shape; `currency` is added only when several currencies are present."""
    several = len({f["currency"] for f in forecasts}) > 1
    keys = ("group", "model", "trained_through", "points") + (("currency",) if several else ())
    return [{k: f[k] for k in keys} for f in forecasts]


@forecast_app.command("show")
def show(
    group_by: str = typer.Option(
        "provider,account,service", "--group-by", "-g",
        help="comma-separated: provider, service, account, region, resource, type, tag:KEY ('' for the total)",
    ),
    filters: list[str] = typer.Option([], "--filter", "-f", help="KEY=VALUE or tag:KEY=VALUE, repeatable"),
    horizon: int = typer.Option(
        30, "--horizon", "-n", min=1, help="days to show after trained_through (up to the stored horizon, 92 by default)"
    ),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """Show the stored daily forecasts (mean and 80/95 % intervals) per group."""
    try:
        keys = parse_group_by(group_by)
        wanted = parse_filters(filters)
    except ValueError as exc:
        fail(str(exc), 2)
    try:
        forecasts = run(load(keys, wanted, horizon))
    except LookupError as exc:
        fail(str(exc.args[0]), 2)
    except Exception as exc:  # noqa: BLE001 - a database without the forecast schema
        fail(_not_ready(exc))
    if output == OutputFormat.JSON:
        print_json({"forecasts": public(forecasts)})
    elif output == OutputFormat.NDJSON:
        print_ndjson(public(forecasts))
    elif not forecasts:
        console.print("no forecasts yet: import billing data and wait for the forecast service")
    else:
        show_table(forecasts, keys, wide=wide)


async def load_month_end(group_by: list[str], filters: dict[str, str]) -> list[dict]:
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings

    wanted = set(group_by) | set(filters)
    async with reader(FinFocusSettings().database) as conn:
        available = [r["dims"] for r in await conn.fetch("SELECT DISTINCT dims FROM forecast.v_month_end")]
        candidates = [a for a in available if not a.startswith("budget:")
                      and wanted <= set(filter(None, a.split(",")))]
        if not candidates:
            if not available:
                return []
            raise LookupError(f"no month-end projections by {dims_id(wanted) or '(total)'}")
        chosen = min(candidates, key=lambda a: (a.count(",") + 1 if a else 0, a))
        rows = await conn.fetch(
            'SELECT "group", currency, trained_through, period_start, period_end, actual_to_date, '
            "forecast_remainder, projected, lo_95, hi_95 FROM forecast.v_month_end WHERE dims = $1",
            chosen,
        )
    out: dict[tuple, dict] = {}
    for r in rows:
        group = r["group"]
        if not all(matches(k, v, group.get(k)) for k, v in filters.items()):
            continue
        key = (tuple(str(group.get(k)) for k in group_by), r["currency"], r["period_start"])
        t = out.setdefault(key, {
            "group": {k: group.get(k) for k in group_by}, "currency": r["currency"],
            "period_start": r["period_start"].isoformat(), "period_end": r["period_end"].isoformat(),
            "trained_through": r["trained_through"].isoformat(),
            **{c: Decimal(0) for c in ("actual_to_date", "forecast_remainder", "projected", "lo_95", "hi_95")},
        })
        t["trained_through"] = min(t["trained_through"], r["trained_through"].isoformat())
        for c in ("actual_to_date", "forecast_remainder", "projected", "lo_95", "hi_95"):
            t[c] += r[c]
    results = [out[k] for k in sorted(out)]
    if rows and filters and not results:
        key, value = next(iter(filters.items()))
        raise NoMatch(no_match_hint(key, value, {r["group"].get(key) for r in rows}))
    for t in results:
        for c in ("actual_to_date", "forecast_remainder", "projected", "lo_95", "hi_95"):
            t[c] = _money(t[c])
    return results


@forecast_app.command("month-end")
def month_end(
    group_by: str = typer.Option(
        "provider,account,service", "--group-by", "-g",
        help="comma-separated: provider, service, account, region, resource, type, tag:KEY ('' for the total)",
    ),
    filters: list[str] = typer.Option([], "--filter", "-f", help="KEY=VALUE or tag:KEY=VALUE, repeatable"),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """Month-end projection per group: actual to date plus the forecast remainder, with a 95 % range."""
    try:
        keys = parse_group_by(group_by)
        wanted = parse_filters(filters)
    except ValueError as exc:
        fail(str(exc), 2)
    try:
        rows = run(load_month_end(keys, wanted))
    except LookupError as exc:
        fail(str(exc.args[0]), 2)
    except Exception as exc:  # noqa: BLE001 - a database without the forecast schema
        fail(_not_ready(exc))
    if output == OutputFormat.JSON:
        print_json({"projections": rows})
    elif output == OutputFormat.NDJSON:
        print_ndjson(rows)
    else:
        from finfocus.cli.output import Column, render_table

        rows.sort(key=lambda r: (r["currency"], -Decimal(r["projected"])))
        render_table(
            [*(Column(k, kind="key") for k in keys), Column("projected", kind="money"),
             Column("95 % range", kind="money"), Column("actual", kind="money", drop=2),
             Column("remainder", kind="money", drop=3), Column("month", drop=4),
             Column("through", drop=5), Column("currency", drop=1)],
            [
                (*[group_label(k, r["group"].get(k)) for k in keys], cents(r["projected"]),
                 f"{cents(r['lo_95'])} - {cents(r['hi_95'])}", cents(r["actual_to_date"]),
                 cents(r["forecast_remainder"]), r["period_start"][:7], r["trained_through"], r["currency"])
                for r in rows
            ],
            title="Month-end projection: actual to date plus the forecast remainder",
            wide=wide,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    app.add_typer(forecast_app, name="forecast")
