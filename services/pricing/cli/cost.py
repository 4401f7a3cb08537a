"""`finfocus cost actual` (stored cost lines) and `finfocus cost projected` (a Pulumi plan).

`cost actual` reads `pricing.v_cost_lines` only, through the read-only role. Every value a
user types is bound as a query parameter; group-by and filter names go through the
whitelists in `schemas.reads.pricing` and never reach SQL as text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
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
    print_table,
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

__all__ = ["BUCKETS", "DIMENSIONS", "METRICS", "VIEW", "Filter", "Query", "UsageError", "actual_queries", "money",
           "parse_filter", "parse_group_by", "parse_when", "result_of", "summary_of", "where_clause"]


async def _actual(
    database_url: str, group_by: list[str], metric: str, start, end, filters: list[Filter], output: OutputFormat,
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
        f = next(f for f in filters if not f.negate) if any(not f.negate for f in filters) else filters[0]
        known = await _known_values(database_url, f.key)
        err_console.print(no_match_hint(f.key, f.value, known), soft_wrap=True, highlight=False)


async def _known_values(database_url: str, key: str) -> list[str]:
    """The values a filter key has (for the hint when nothing matched; a bounded scan)."""
    from finfocus.db import reader

    q = Query()
    expr = _expression(key, q)
    async with reader(database_url) as conn:
        rows = await conn.fetch(f"SELECT DISTINCT {expr} AS v FROM {VIEW} LIMIT 200", *q.params)
    return [r["v"] for r in rows if r["v"]]


def actual_table(summary: dict, results: list[dict], group_by: list[str], metric: str, *, wide: bool = False) -> None:
    """Largest cost first with its share of its currency's total; every group shown as a value
    ('(untagged)' for a missing tag); money rounded to the cent (JSON keeps every digit)."""
    totals = {t["currency"]: Decimal(t["totalCost"]) for t in
              summary.get("totals") or [{"currency": summary["currency"], "totalCost": summary["totalCost"]}]}
    several = len(totals) > 1
    ordered = sorted(results, key=lambda r: (r["currency"] or "", -Decimal(r["cost"])))
    render_table(
        [*(Column(k, kind="key") for k in group_by), Column("cost", kind="money"), Column("share", kind="number"),
         *([Column("currency")] if several or not group_by else [])],
        [[*(group_label(k, r["group"].get(k)) for k in group_by), cents(r["cost"]),
          share(Decimal(r["cost"]), totals.get(r["currency"], Decimal(0))),
          *([r["currency"]] if several or not group_by else [])] for r in ordered],
        title=f"Actual cost ({metric})", wide=wide,
    )
    for currency, total in totals.items():
        typer.echo(f"Total {currency or ''}: {cents(total)}")
    if summary["unpriced"]:
        typer.echo(f"{summary['unpriced']} line(s) have no price (x_PriceSource=none) and are not in the totals")


async def _stream(conn, sql: str, params: list[Any], group_by: list[str]) -> AsyncIterator[dict]:
    async for row in conn.cursor(sql, *params, prefetch=1000):
        yield result_of(row, group_by)


class ProjectedOutput(StrEnum):
    TABLE = "table"
    JSON = "json"
    NDJSON = "ndjson"
    MARKDOWN = "markdown"


def _cents(value: str | None) -> str:
    if value is None:
        return "n/a"
    return format(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), ",f")


def markdown_report(doc: dict, budget: Decimal | None = None) -> str:
    """A pull-request comment: totals before/after/delta, per resource, and what has no price."""
    s = doc["summary"]
    cur = s["currency"]
    delta = Decimal(s["delta"])
    sign = "+" if delta > 0 else ""
    lines = [
        "## FinFocus cost estimate",
        "",
        f"**Monthly: {_cents(s['before'])} → {_cents(s['totalMonthly'])} {cur} ({sign}{_cents(s['delta'])} {cur})**"
        f" · {s['resources']} resources · {s['hoursPerMonth']} h/month",
        "",
    ]
    if budget is not None:
        over = Decimal(s["totalMonthly"]) > budget
        lines += [f"{'❌ over' if over else '✅ within'} budget of {_cents(str(budget))} {cur}", ""]
    lines += ["| Resource | Type | Op | SKU | Region | Before | After | Delta | Source |", "|---|---|---|---|---|--:|--:|--:|---|"]
    for r in doc["resources"]:
        if r["priceSource"] == "none":
            continue
        d = r["delta"]
        lines.append(
            f"| `{r['name']}` | `{r['type']}` | {r['op']} | {r['sku'] or ''} | {r['region'] or ''} | "
            f"{_cents(r['before'])} | {_cents(r['monthly'])} | {('+' if d and Decimal(d) > 0 else '') + _cents(d)} | {r['priceSource']} |"
        )
    missing = [r for r in doc["resources"] if r["priceSource"] == "none"]
    if missing:
        lines += ["", f"<details><summary>{len(missing)} resource(s) without a price</summary>", ""]
        lines += [f"- `{r['name']}` (`{r['type']}`): {r.get('reason', '')}" for r in missing]
        lines += ["", "</details>"]
    if s["byProvider"]:
        lines += ["", "By provider: " + ", ".join(f"{k} {_cents(v)}" for k, v in s["byProvider"].items())]
    return "\n".join(lines) + "\n"


async def _projected(plan: dict, *, currency: str, region: str | None, spec_dirs: list[Path], plugins: bool, settings) -> dict:
    from services.pricing.projected import price_plan
    from services.pricing.specs import load_specs

    book, problems = load_specs(*spec_dirs)
    for problem in problems:
        err_console.print(f"[yellow]warning:[/yellow] spec {problem.file} skipped: {problem.error}")
    host = None
    if plugins:
        from services.pricing.plugins import make_host

        host = make_host(settings, cache_file=settings.home / "cache" / "plugin-prices.json")
    try:
        doc = await price_plan(plan, specs=book, quotes=host.quotes if host and host.plugins else None,
                               currency=currency, aws_region=region)
    finally:
        if host is not None:
            failures = {n: r for n, r in host.report().items() if r["failures"]}
            await host.stop()
    if host is not None and failures:
        doc["summary"]["pluginFailures"] = {n: r["last_error"] for n, r in failures.items()}
    return doc


def register(app: typer.Typer) -> None:
    """Add `finfocus cost actual|projected` to the `finfocus` app."""
    cost = typer.Typer(help="Actual cost from stored lines, projected cost of a Pulumi plan.", no_args_is_help=True)
    app.add_typer(cost, name="cost")

    @cost.command("actual")
    def actual(
        start: str = typer.Option(None, "--from", help="Start (inclusive) of ChargePeriodStart: YYYY-MM-DD or RFC 3339"),
        end: str = typer.Option(None, "--to", help="End (exclusive) of ChargePeriodStart: YYYY-MM-DD or RFC 3339"),
        group_by: str = typer.Option(
            None, "--group-by", "-g",
            help="Comma-separated: provider, service, account, region, resource, type, sku, category, "
            "daily, monthly, tag:KEY",
        ),
        filters: list[str] = typer.Option(
            None, "--filter", "-f", help="KEY=VALUE, KEY!=VALUE, tag:KEY=VALUE (repeatable; same key = OR)"
        ),
        metric: str = typer.Option("billed", "--metric", help="billed, effective, list or contracted"),
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

        async def go() -> None:
            import asyncpg

            try:
                await _actual(FinFocusSettings().database, groups, metric, *window, parsed, output, wide)
            except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError, asyncpg.InvalidParameterValueError):
                fail("no cost lines yet: the pricing service has not run against this database")

        run(go())

    @cost.command("projected")
    def projected(
        pulumi_json: Path = typer.Option(..., "--pulumi-json", help="Output of `pulumi preview --json`", exists=True, dir_okay=False),
        output: ProjectedOutput = typer.Option(ProjectedOutput.TABLE, "--output", "-o", help="table, json, ndjson or markdown (a pull-request comment)"),
        budget: str = typer.Option(None, "--budget", help="Exit with code 1 when the monthly total exceeds this amount"),
        currency: str = typer.Option("USD", "--currency", help="Currency to price in (ISO 4217)"),
        region: str = typer.Option(None, "--region", help="AWS region for resources that do not name one (default: the plan's aws:region)"),
        specs: list[Path] = typer.Option(None, "--specs", help="Directory of YAML price specs (repeatable; default FINFOCUS_HOME/specs)"),
        plugins: bool = typer.Option(True, "--plugins/--no-plugins", help="Ask pricing plugins (installed ones and aws-public)"),
    ) -> None:
        """Monthly cost of a Pulumi plan (730 h/month): per resource, before, after and delta."""
        import orjson

        from services.pricing.config import PricingSettings

        limit = None
        if budget is not None:
            try:
                limit = Decimal(budget)
            except InvalidOperation:
                fail(f"--budget {budget!r} is not a number", 2)
        try:
            plan = orjson.loads(pulumi_json.read_bytes())
        except orjson.JSONDecodeError as exc:
            fail(f"{pulumi_json} is not JSON: {exc}", 2)
        settings = PricingSettings()
        spec_dirs = list(specs or []) or [settings.specs_dir]

        async def go() -> dict:
            return await _projected(plan, currency=currency, region=region, spec_dirs=spec_dirs, plugins=plugins, settings=settings)

        try:
            doc = run(go())
        except ValueError as exc:
            fail(str(exc), 2)
        summary = doc["summary"]
        if output is ProjectedOutput.JSON:
            print_json(doc)
        elif output is ProjectedOutput.NDJSON:
            print_ndjson(doc["resources"])
        elif output is ProjectedOutput.MARKDOWN:
            typer.echo(markdown_report(doc, limit), nl=False)
        else:
            print_table(
                ["resource", "type", "op", "sku", "region", "monthly", "delta", "source"],
                [[r["name"], r["type"], r["op"], r["sku"], r["region"],
                  _cents(r["monthly"]) if r["priceSource"] != "none" else "—", _cents(r["delta"]) if r["delta"] else "",
                  r["priceSource"] if r["priceSource"] != "none" else f"none: {r.get('reason', '')}"]
                 for r in doc["resources"]],
                title=f"Projected monthly cost ({summary['currency']}, {summary['hoursPerMonth']} h/month)",
            )
            typer.echo(f"Total monthly: {_cents(summary['totalMonthly'])} {summary['currency']} "
                       f"(before {_cents(summary['before'])}, delta {_cents(summary['delta'])})")
            if summary["unpriced"]:
                typer.echo(f"{summary['unpriced']} resource(s) have no price; see the source column")
        for name, error in summary.get("pluginFailures", {}).items():
            err_console.print(f"[yellow]warning:[/yellow] plugin {name} failed: {error}")
        if limit is not None and Decimal(summary["totalMonthly"]) > limit:
            err_console.print(f"[red]over budget:[/red] {_cents(summary['totalMonthly'])} > {_cents(str(limit))} {summary['currency']}")
            raise typer.Exit(1)

