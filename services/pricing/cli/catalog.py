"""`finfocus catalog refresh|show`: the instance catalog (unit prices with price history)."""

from __future__ import annotations

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    print_json,
    print_ndjson,
    print_table,
    run,
)

SHOW = """
SELECT provider, service, sku, region, unit, unit_price, currency, source, description,
       effective_from, effective_to, current
FROM pricing.v_catalog_prices
WHERE ($1::text IS NULL OR lower(provider) = lower($1))
  AND ($2::text IS NULL OR lower(service) = lower($2))
  AND ($3::text IS NULL OR lower(sku) = lower($3))
  AND ($4::text IS NULL OR region = $4)
  AND ($5 OR current)
ORDER BY provider, service, sku, region, effective_from
"""


async def _refresh(settings, plugin: str | None) -> dict:
    from finfocus.db import connect, migrate_url
    from services.pricing.app import MIGRATIONS_DIR
    from services.pricing.catalog import refresh
    from services.pricing.plugins import make_host

    host = make_host(settings)
    if plugin:
        host.plugins = [p for p in host.plugins if p.name == plugin]
        if not host.plugins:
            raise ValueError(f"no plugin named {plugin!r}")
    # the catalog lives in the pricing schema; make sure it exists even before the service ran
    await migrate_url(settings.database, "pricing", MIGRATIONS_DIR)
    await host.start()
    conn = await connect(settings.database)
    try:
        return await refresh(host, conn)
    finally:
        await conn.close()
        await host.stop()


async def _show(url: str, args: tuple) -> list[dict]:
    from finfocus.db import reader

    async with reader(url) as conn:
        return [dict(r) for r in await conn.fetch(SHOW, *args)]


def register(app: typer.Typer) -> None:
    """Add `finfocus catalog ...` to the `finfocus` app."""
    catalog = typer.Typer(
        help="Instance catalog: unit prices with effective dates, refreshed through plugins.",
        no_args_is_help=True,
    )
    app.add_typer(catalog, name="catalog")

    @catalog.command("refresh")
    def refresh_(
        plugin: str = typer.Option(None, "--plugin", help="Refresh from this plugin only"),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Ask every plugin (installed ones and aws-public) for its prices and record changes."""
        from finfocus.cli.output import fail
        from services.pricing.config import PricingSettings

        settings = PricingSettings()
        try:
            report = run(_refresh(settings, plugin))
        except ValueError as exc:
            fail(str(exc), 2)
        if output is OutputFormat.JSON:
            print_json({"plugins": report})
        elif output is OutputFormat.NDJSON:
            print_ndjson([{"plugin": k, **v} for k, v in report.items()])
        else:
            print_table(
                ["plugin", "prices", "changed", "unchanged", "refused", "error"],
                [
                    [
                        k,
                        v["prices"],
                        v["changed"],
                        v["unchanged"],
                        len(v["refused"]),
                        v["error"] or "",
                    ]
                    for k, v in report.items()
                ],
                title="Catalog refresh",
            )
        if report and all(v["prices"] == 0 and v["error"] for v in report.values()):
            raise typer.Exit(1)

    @catalog.command("show")
    def show(
        provider: str = typer.Option(None, "--provider"),
        service: str = typer.Option(None, "--service"),
        sku: str = typer.Option(None, "--sku", help="SKU, instance or volume type"),
        region: str = typer.Option(None, "--region"),
        history: bool = typer.Option(
            False, "--history", help="Include superseded prices (price history)"
        ),
        output: OutputFormat = OUTPUT_OPTION,
        wide: bool = typer.Option(
            False, "--wide", help="every column, long text folded over lines"
        ),
    ) -> None:
        """Catalog prices (current ones unless --history)."""
        from finfocus.settings import FinFocusSettings

        async def go() -> list[dict]:
            import asyncpg

            from finfocus.cli.output import fail

            try:
                return await _show(
                    FinFocusSettings().database, (provider, service, sku, region, history)
                )
            except (
                asyncpg.UndefinedTableError,
                asyncpg.InvalidSchemaNameError,
                asyncpg.InvalidParameterValueError,
            ):
                fail("the catalog is empty: run `finfocus catalog refresh` first")

        rows = run(go())
        if output is OutputFormat.JSON:
            print_json({"prices": rows})
        elif output is OutputFormat.NDJSON:
            print_ndjson(rows)
        else:
            from finfocus.cli.output import Column, render_table

            render_table(
                [
                    Column("sku", kind="id"),
                    Column("price", kind="number"),
                    Column("unit", kind="id"),
                    Column("region", kind="id"),
                    Column("service", kind="key", drop=1),
                    Column("provider", drop=3),
                    Column("currency", drop=7),
                    Column("from", kind="date", drop=4),
                    Column("to", kind="date", drop=5),
                    Column("source", drop=6),
                ],
                [
                    [
                        r["sku"],
                        r["unit_price"],
                        r["unit"],
                        r["region"],
                        r["service"],
                        r["provider"],
                        r["currency"],
                        r["effective_from"].date(),
                        r["effective_to"].date() if r["effective_to"] else "",
                        r["source"],
                    ]
                    for r in rows
                ],
                title="Price catalog",
                wide=wide,
            )
