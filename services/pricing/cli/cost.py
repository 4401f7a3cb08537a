"""`finfocus cost actual` (stored cost lines) and `finfocus cost projected` (a Pulumi or Terraform
plan; in `services.pricing.cli.projected`, with the `fx` and `prices` groups).

`cost actual` reads `pricing.v_cost_lines` only, through the read-only role. Every value a
user types is bound as a query parameter; group-by and filter names go through the
whitelists in `schemas.reads.pricing` and never reach SQL as text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    WIDE_OPTION,
    Column,
    OutputFormat,
    err_console,
    fail,
    print_json,
    print_ndjson,
    render_table,
    run,
)
from finfocus.cli.vocab import cents, group_label, no_match_hint, share
from schemas.reads.pricing import (
    BUCKETS,
    DIMENSIONS,
    METRICS,
    VIEW,
    Filter,
    Query,
    UsageError,
    actual_queries,
    money,
    parse_filter,
    parse_group_by,
    parse_when,
    result_of,
    summary_of,
    where_clause,
)
from schemas.reads.pricing import expression as _expression
from services.pricing.cli import projected
from services.pricing.cli.projected import ProjectedOutput, markdown_report

__all__ = [
    "ProjectedOutput",
    "markdown_report",
    "BUCKETS",
    "DIMENSIONS",
    "METRICS",
    "VIEW",
    "Filter",
    "Query",
    "UsageError",
    "actual_queries",
    "money",
    "parse_filter",
    "parse_group_by",
    "parse_when",
    "result_of",
    "summary_of",
    "where_clause",
]


async def _actual(
    database_url: str,
    group_by: list[str],
    metric: str,
    start,
    end,
    filters: list[Filter],
    output: OutputFormat,
    wide: bool = False,
) -> None:
    from finfocus.db import reader

    (rsql, rparams), (tsql, tparams) = actual_queries(group_by, metric, start, end, filters)
    async with reader(database_url) as conn:
        if output is OutputFormat.NDJSON:
            async with conn.transaction():
                rows = _stream(conn, rsql, rparams, group_by)
                buffered = []
                async for item in rows:
                    buffered.append(item)
                    if len(buffered) >= 1000:
                        print_ndjson(buffered)
                        buffered = []
                print_ndjson(buffered)
            return
        totals = [dict(r) for r in await conn.fetch(tsql, *tparams)]
        rows = await conn.fetch(rsql, *rparams)
    summary = summary_of(totals, start, end, metric, group_by)
    results = [result_of(r, group_by) for r in rows]
    if output is OutputFormat.JSON:
        print_json({"summary": summary, "results": results})
        return
    actual_table(summary, results, group_by, metric, wide=wide)
    if filters and not results:
        f = (
            next(f for f in filters if not f.negate)
            if any(not f.negate for f in filters)
            else filters[0]
        )
        known = await _known_values(database_url, f.key)
        err_console.print(no_match_hint(f.key, f.value, known), soft_wrap=True, highlight=False)


def _actual_remote(
    api,
    start: str | None,
    end: str | None,
    group_by: str | None,
    filters: list[str],
    metric: str,
    groups: list[str],
    output: OutputFormat,
    wide: bool,
) -> None:
    """`cost actual` through the API: GET /api/v1/costs with the options as typed."""
    params: list[tuple[str, str]] = [("metric", metric)]
    params += [(k, v) for k, v in (("from", start), ("to", end), ("group_by", group_by)) if v]
    params += [("filter", f) for f in filters]
    doc = api.get("/api/v1/costs", params)
    if output is OutputFormat.JSON:
        print_json(doc)
    elif output is OutputFormat.NDJSON:
        print_ndjson(doc["results"])
    else:
        actual_table(doc["summary"], doc["results"], groups, metric, wide=wide)


async def _known_values(database_url: str, key: str) -> list[str]:
    """The values a filter key has (for the hint when nothing matched; a bounded scan)."""
    from finfocus.db import reader

    q = Query()
    expr = _expression(key, q)
    async with reader(database_url) as conn:
        rows = await conn.fetch(f"SELECT DISTINCT {expr} AS v FROM {VIEW} LIMIT 200", *q.params)
    return [r["v"] for r in rows if r["v"]]


def actual_table(
    summary: dict, results: list[dict], group_by: list[str], metric: str, *, wide: bool = False
) -> None:
    """Largest cost first with its share of its currency's total; every group shown as a value
    ('(untagged)' for a missing tag); money rounded to the cent (JSON keeps every digit)."""
    totals = {
        t["currency"]: Decimal(t["totalCost"])
        for t in summary.get("totals")
        or [{"currency": summary["currency"], "totalCost": summary["totalCost"]}]
    }
    several = len(totals) > 1
    ordered = sorted(results, key=lambda r: (r["currency"] or "", -Decimal(r["cost"])))
    render_table(
        [
            *(Column(k, kind="key") for k in group_by),
            Column("cost", kind="money"),
            Column("share", kind="number"),
            *([Column("currency")] if several or not group_by else []),
        ],
        [
            [
                *(group_label(k, r["group"].get(k)) for k in group_by),
                cents(r["cost"]),
                share(Decimal(r["cost"]), totals.get(r["currency"], Decimal(0))),
                *([r["currency"]] if several or not group_by else []),
            ]
            for r in ordered
        ],
        title=f"Actual cost ({metric})",
        wide=wide,
    )
    for currency, total in totals.items():
        typer.echo(f"Total {currency or ''}: {cents(total)}")
    if summary["unpriced"]:
        typer.echo(
            f"{summary['unpriced']} line(s) have no price (x_PriceSource=none) and are not in the totals"
        )


async def _stream(conn, sql: str, params: list[Any], group_by: list[str]) -> AsyncIterator[dict]:
    async for row in conn.cursor(sql, *params, prefetch=1000):
        yield result_of(row, group_by)


def register(app: typer.Typer) -> None:
    """Add `finfocus cost actual|projected`, `finfocus fx` and `finfocus prices` to the `finfocus` app."""
    cost = typer.Typer(
        help="Actual cost from stored lines, projected cost of a Pulumi or Terraform plan.",
        no_args_is_help=True,
    )
    app.add_typer(cost, name="cost")

    @cost.command("actual")
    def actual(
        start: str = typer.Option(
            None, "--from", help="Start (inclusive) of ChargePeriodStart: YYYY-MM-DD or RFC 3339"
        ),
        end: str = typer.Option(
            None, "--to", help="End (exclusive) of ChargePeriodStart: YYYY-MM-DD or RFC 3339"
        ),
        group_by: str = typer.Option(
            None,
            "--group-by",
            "-g",
            help="Comma-separated: provider, service, account, region, resource, type, sku, category, "
            "daily, monthly, tag:KEY",
        ),
        filters: list[str] = typer.Option(
            None,
            "--filter",
            "-f",
            help="KEY=VALUE, KEY!=VALUE, tag:KEY=VALUE (repeatable; same key = OR)",
        ),
        metric: str = typer.Option(
            "billed", "--metric", help="billed, effective, list or contracted"
        ),
        output: OutputFormat = OUTPUT_OPTION,
        wide: bool = WIDE_OPTION,
    ) -> None:
        """Cost of the stored lines in [--from, --to), grouped and filtered; currencies are never added."""
        from finfocus.settings import FinFocusSettings

        try:
            groups = parse_group_by(group_by)
            parsed = [parse_filter(f) for f in filters or []]
            window = parse_when(start, "--from"), parse_when(end, "--to")
            if metric not in METRICS:
                raise UsageError(f"unknown --metric {metric!r}; use one of {', '.join(METRICS)}")
        except UsageError as exc:
            fail(str(exc), 2)
        if window[0] and window[1] and window[1] <= window[0]:
            fail("--to must be after --from", 2)

        from finfocus.cli.remote import remote

        api = remote()
        if api is not None:  # a remote deployment: its /api/v1/costs answers the same document
            _actual_remote(api, start, end, group_by, filters or [], metric, groups, output, wide)
            return

        async def go() -> None:
            import asyncpg

            try:
                await _actual(
                    FinFocusSettings().database, groups, metric, *window, parsed, output, wide
                )
            except (
                asyncpg.UndefinedTableError,
                asyncpg.InvalidSchemaNameError,
                asyncpg.InvalidParameterValueError,
            ):
                fail("no cost lines yet: the pricing service has not run against this database")

        run(go())

    projected.register(cost)
    projected.register_groups(app)
