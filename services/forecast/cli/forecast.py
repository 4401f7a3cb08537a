"""`finfocus forecast show`: stored forecasts from `forecast.v_forecasts`, as a chart or JSON."""

from __future__ import annotations

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
from schemas.reads import forecast as reads
from schemas.reads.forecast import (
    BANDS,
    GROUP_KEYS,
    HorizonError,
    NoMatch,
    check_horizon,
    combine,
    dims_id,
    parse_filters,
    parse_group_by,
    public,
)
from schemas.reads.forecast import money as _money

__all__ = [
    "BANDS",
    "GROUP_KEYS",
    "HorizonError",
    "NoMatch",
    "check_horizon",
    "combine",
    "dims_id",
    "forecast_app",
    "parse_filters",
    "parse_group_by",
    "public",
    "register",
]

SPARK = "▁▂▃▄▅▆▇█"

forecast_app = typer.Typer(
    help="Cost forecasts per dimension with 80 % and 95 % intervals.", no_args_is_help=True
)


def _not_ready(exc: Exception) -> str:
    """A clear message for a database the forecast service has not prepared yet."""
    import asyncpg

    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.InvalidSchemaNameError):
        return "no forecasts yet: the forecast service has not started against this database"
    if isinstance(exc, typer.Exit):
        raise exc
    return f"cannot read forecasts: {exc}"


async def load(group_by: list[str], filters: dict[str, str], horizon: int) -> list[dict]:
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings

    async with reader(FinFocusSettings().database) as conn:
        return await reads.forecasts(conn, group_by, filters, horizon)


def chart(values: list[Decimal]) -> str:
    """A one-line chart of daily means (the shared `sparkline`)."""
    from finfocus.cli.output import sparkline

    return sparkline(values)


def show_table(forecasts: list[dict], group_by: list[str], *, wide: bool = False) -> None:
    """Largest forecast first, with its share of the currency's total; the group, the total
    and its range are never cut, the chart and the model give way on narrow terminals."""
    from finfocus.cli.output import Column, render_table

    # the API's document names the currency only when there are several (`public`)
    forecasts = [f if "currency" in f else {**f, "currency": ""} for f in forecasts]
    currencies = sorted({f["currency"] for f in forecasts})
    named = f" ({', '.join(currencies)})" if any(currencies) else ""
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
    columns = (
        [Column(k, kind="key") for k in group_by]
        + [
            Column("total", kind="money"),
            Column("95 % range", kind="money"),
            Column("share", kind="number"),
            Column("chart", kind="chart", drop=2),
            Column("model", drop=3),
            Column("through", kind="date", drop=4),
        ]
        + ([Column("currency", kind="key")] if len(currencies) > 1 else [])
    )
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
        columns,
        table_rows,
        wide=wide,
        title=f"Forecast, next {days} days{named}: total and 95 % range",
    )


@forecast_app.command("show")
def show(
    group_by: str = typer.Option(
        "provider,account,service",
        "--group-by",
        "-g",
        help="comma-separated: provider, service, account, region, resource, type, tag:KEY ('' for the total)",
    ),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="KEY=VALUE or tag:KEY=VALUE, repeatable"
    ),
    horizon: int = typer.Option(
        30,
        "--horizon",
        "-n",
        min=1,
        help="days to show after trained_through (up to the stored horizon, 92 by default)",
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
    from finfocus.cli.remote import remote

    api = remote()
    if api is not None:  # a remote deployment: GET /api/v1/forecasts answers the same document
        params = [
            ("group_by", group_by),
            ("horizon", str(horizon)),
            *(("filter", f) for f in filters),
        ]
        forecasts = api.get("/api/v1/forecasts", params, usage=(400, 404, 422))["forecasts"]
    else:
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
        available = [
            r["dims"] for r in await conn.fetch("SELECT DISTINCT dims FROM forecast.v_month_end")
        ]
        candidates = [
            a
            for a in available
            if not a.startswith("budget:") and wanted <= set(filter(None, a.split(",")))
        ]
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
        t = out.setdefault(
            key,
            {
                "group": {k: group.get(k) for k in group_by},
                "currency": r["currency"],
                "period_start": r["period_start"].isoformat(),
                "period_end": r["period_end"].isoformat(),
                "trained_through": r["trained_through"].isoformat(),
                **{
                    c: Decimal(0)
                    for c in ("actual_to_date", "forecast_remainder", "projected", "lo_95", "hi_95")
                },
            },
        )
        t["trained_through"] = min(t["trained_through"], r["trained_through"].isoformat())
        for c in ("actual_to_date", "forecast_remainder", "projected", "lo_95", "hi_95"):
            t[c] += r[c]
    results = [out[k] for k in sorted(out)]
    if rows and filters and not results:
        dim, value = next(iter(filters.items()))
        raise NoMatch(no_match_hint(dim, value, {r["group"].get(dim) for r in rows}))
    for t in results:
        for c in ("actual_to_date", "forecast_remainder", "projected", "lo_95", "hi_95"):
            t[c] = _money(t[c])
    return results


@forecast_app.command("month-end")
def month_end(
    group_by: str = typer.Option(
        "provider,account,service",
        "--group-by",
        "-g",
        help="comma-separated: provider, service, account, region, resource, type, tag:KEY ('' for the total)",
    ),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="KEY=VALUE or tag:KEY=VALUE, repeatable"
    ),
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
            [
                *(Column(k, kind="key") for k in keys),
                Column("projected", kind="money"),
                Column("95 % range", kind="money"),
                Column("actual", kind="money", drop=2),
                Column("remainder", kind="money", drop=3),
                Column("month", kind="date", drop=4),
                Column("through", kind="date", drop=5),
                Column("currency", drop=1),
            ],
            [
                (
                    *[group_label(k, r["group"].get(k)) for k in keys],
                    cents(r["projected"]),
                    f"{cents(r['lo_95'])} - {cents(r['hi_95'])}",
                    cents(r["actual_to_date"]),
                    cents(r["forecast_remainder"]),
                    r["period_start"][:7],
                    r["trained_through"],
                    r["currency"],
                )
                for r in rows
            ],
            title="Month-end projection: actual to date plus the forecast remainder",
            wide=wide,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    app.add_typer(forecast_app, name="forecast")
