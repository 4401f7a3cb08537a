"""`finfocus cost projected` (a Pulumi or Terraform plan's monthly cost, with a gate that fails
closed), `finfocus fx import|show` (exchange rates) and `finfocus prices refresh|show` (the price
snapshots `cost projected` uses).

Exit codes of `cost projected`: 0 priced (and within the gate), 1 the gate failed (over
`--budget`, a policy rule broken, or a resource without a price and no `--allow-unpriced`),
2 a usage error (unreadable plan, usage, policy or rates file; no exchange rate for
`--currency`).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path

import typer

from finfocus.cli.output import (
    WIDE_OPTION,
    err_console,
    fail,
    print_json,
    print_ndjson,
    print_table,
    run,
)

#: the currency of the price snapshots (converted from when --currency differs)
PRICE_DATA_CURRENCY = "USD"
#: price data older than this is shown with the command that refreshes it
STALE_DAYS = 90


class ProjectedOutput(StrEnum):
    TABLE = "table"
    JSON = "json"
    NDJSON = "ndjson"
    MARKDOWN = "markdown"


def _cents(value: str | None) -> str:
    if value is None:
        return "n/a"
    return format(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), ",f")


def _signed(value: str | None) -> str:
    return ("+" if value is not None and Decimal(value) > 0 else "") + _cents(value)


def price_data_line(summary: dict) -> str | None:
    """'Prices: AWS Price List bulk offer files, effective 2024-09-01 (92 days old); ...'"""
    data = summary.get("priceData") or []
    if not data:
        return None
    return "Prices: " + "; ".join(
        f"{d['source']}, effective {d['effectiveDate']}"
        + (
            f" ({d['ageDays']} days old"
            + (
                f"; `finfocus prices refresh {d['cloud']}` for current ones)"
                if d["ageDays"] > STALE_DAYS
                else ")"
            )
            if d.get("ageDays") is not None
            else ""
        )
        for d in data
    )


def markdown_report(doc: dict, budget: Decimal | None = None) -> str:
    """A pull-request comment: totals before/after/delta (and against the base plan), per
    resource, what has no price, the gate's violations, the exchange rate and price data used."""
    s = doc["summary"]
    cur = s["currency"]
    lines = [
        "## FinFocus cost estimate",
        "",
        f"**Monthly: {_cents(s['before'])} → {_cents(s['totalMonthly'])} {cur} ({_signed(s['delta'])} {cur})**"
        f" · {s['resources']} resources · {s['hoursPerMonth']} h/month",
        "",
    ]
    if s.get("base"):
        b = s["base"]
        pct = f", {_signed(b['deltaPercent'])}%" if b.get("deltaPercent") is not None else ""
        lines += [
            f"Against the base plan: {_cents(b['totalMonthly'])} → {_cents(s['totalMonthly'])} {cur} "
            f"({_signed(b['delta'])} {cur}{pct})",
            "",
        ]
    if s.get("exchangeRate"):
        lines += [f"Converted at {s['exchangeRate']['text']}", ""]
    gate = doc.get("gate")
    if budget is not None and gate is None:
        over = Decimal(s["totalMonthly"]) > budget
        lines += [f"{'❌ over' if over else '✅ within'} budget of {_cents(str(budget))} {cur}", ""]
    if gate is not None:
        if gate["passed"]:
            lines += [f"✅ {gate['checked']}: passed", ""]
        else:
            lines += [f"❌ {gate['checked']}: {len(gate['violations'])} violation(s)", ""]
            lines += [f"- **{v['rule']}**: {v['reason']}" for v in gate["violations"]] + [""]
    lines += [
        "| Resource | Type | Op | SKU | Region | Before | After | Delta | Source |",
        "|---|---|---|---|---|--:|--:|--:|---|",
    ]
    for r in doc["resources"]:
        if r["priceSource"] == "none":
            continue
        lines.append(
            f"| `{r.get('address') or r['name']}` | `{r['type']}` | {r['op']} | {r['sku'] or ''} | {r['region'] or ''} | "
            f"{_cents(r['before'])} | {_cents(r['monthly'])} | {_signed(r['delta'])} | {r['priceSource']} |"
        )
    missing = [r for r in doc["resources"] if r["priceSource"] == "none"]
    if missing:
        lines += ["", f"<details><summary>{len(missing)} resource(s) without a price</summary>", ""]
        lines += [
            f"- `{r.get('address') or r['name']}` (`{r['type']}`): {r.get('reason', '')}"
            for r in missing
        ]
        lines += ["", "</details>"]
    if s["byProvider"]:
        lines += [
            "",
            "By provider: " + ", ".join(f"{k} {_cents(v)}" for k, v in s["byProvider"].items()),
        ]
    data = price_data_line(s)
    if data:
        lines += ["", data]
    return "\n".join(lines) + "\n"


def _read_plan(path: Path, kind: str) -> dict:
    import orjson

    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        fail(f"{path} is not JSON: {exc}", 2)
    except OSError as exc:
        fail(f"{path}: {exc.strerror}", 2)
    if not isinstance(doc, dict):
        fail(f"{path} is not a {kind} plan (a JSON object)", 2)
    return doc


def _resources(doc: dict, *, terraform_format: bool, region: str | None, usage):
    from services.pricing import terraform
    from services.pricing.projected import plan_resources

    if terraform_format:
        return terraform.plan_resources(doc, aws_region=region, usage=usage), "terraform"
    config = doc.get("config") or {}
    return plan_resources(doc, aws_region=region or config.get("aws:region"), usage=usage), "pulumi"


def _conversion(currency: str, fx_date: date | None, fx_rates: Path | None, settings):
    """The one rate `--currency` converts at, from --fx-rates or the imported table."""
    from services.pricing.fx import RateTable, parse_rates

    if currency == PRICE_DATA_CURRENCY:
        return None
    if fx_rates is not None:
        try:
            table = RateTable(parse_rates(fx_rates.read_text(), source=None))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--fx-rates {fx_rates}: {exc}") from None
    else:
        import asyncpg

        from finfocus.db import reader
        from services.pricing.store import fetch_fx_rates

        async def read():
            async with reader(settings.database) as conn:
                return await fetch_fx_rates(conn)

        try:
            table = RateTable(run(read()))
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            raise ValueError(
                f"no exchange rates to convert to {currency}: import some with `finfocus fx import FILE` "
                "or pass --fx-rates FILE"
            ) from None
        except (OSError, asyncpg.PostgresError) as exc:
            raise ValueError(
                f"no exchange rates to convert to {currency}: the database cannot be read ({exc}); "
                "pass --fx-rates FILE"
            ) from None
    return table.conversion(PRICE_DATA_CURRENCY, currency, fx_date)


def _host(settings):
    """Installed pricing plugins only (the built-in aws-public's prices are in the snapshot),
    answers cached between runs in FINFOCUS_HOME/cache."""
    if not settings.plugins_dir.is_dir():  # nothing installed: no plugin machinery to load
        return None
    from services.pricing.host import PluginHost
    from services.pricing.plugins import discover

    installed, _problems = discover(settings.plugins_dir)
    if not installed:
        return None
    return PluginHost(
        installed,
        timeout=settings.pricing_plugin_timeout_s,
        retries=settings.pricing_plugin_retries,
        ttl=settings.pricing_cache_ttl_s,
        log_dir=settings.logs_dir,
        cache_file=settings.home / "cache" / "plugin-prices.json",
    )


async def project(
    resources,
    plan_format: str,
    *,
    currency: str,
    spec_dirs: list[Path],
    plugins: bool,
    settings,
    fx=None,
) -> dict:
    """The priced document of `resources`: plugins (installed ones), specs, then the snapshot."""
    from services.pricing.projected import price_resources
    from services.pricing.snapshot import BUNDLED_DIR, PriceSnapshot
    from services.pricing.specs import load_specs

    book, problems = load_specs(*spec_dirs)
    for problem in problems:
        err_console.print(f"[yellow]warning:[/yellow] spec {problem.file} skipped: {problem.error}")
    snapshot = PriceSnapshot.load(settings.home / "prices", BUNDLED_DIR)
    host = _host(settings) if plugins else None
    failures: dict = {}
    try:
        doc = await price_resources(
            resources,
            specs=book,
            quotes=host.quotes if host else None,
            currency=currency,
            snapshot=snapshot,
            fx=fx,
            plan_format=plan_format,
        )
    finally:
        if host is not None:
            failures = {n: r for n, r in host.report().items() if r["failures"]}
            await host.stop()
    if failures:
        doc["summary"]["pluginFailures"] = {n: r["last_error"] for n, r in failures.items()}
    return doc


def _table(doc: dict, *, wide: bool = False) -> None:
    from finfocus.cli.output import Column, render_table

    summary = doc["summary"]
    rows = []
    for r in doc["resources"]:
        source = r["priceSource"] if r["priceSource"] != "none" else f"none: {r.get('reason', '')}"
        rows.append(
            [
                r["address"],
                r["type"],
                r["op"],
                r["sku"] or "",
                r["region"] or "",
                _cents(r["monthly"]) if r["priceSource"] != "none" else "—",
                _cents(r["delta"]) if r["delta"] else "",
                source,
            ]
        )
        components = r["components"] if r["priceSource"] != "free" else []
        if len(components) > 1:  # root volumes, storage, IOPS... each on its own line
            for c in components:
                rows.append(
                    [
                        f"  └ {c['label']}",
                        "",
                        "",
                        c["sku"] or "",
                        "",
                        _cents(c["monthly"]) if c["monthly"] else "—",
                        "",
                        f"{c['quantity']} {c['unit']} x {c['unitPrice']}"
                        if c["unitPrice"]
                        else c["priceSource"],
                    ]
                )
    render_table(
        [
            Column("resource", kind="key"),
            Column("type", drop=3),
            Column("op", drop=4),
            Column("sku"),
            Column("region", drop=2),
            Column("monthly", kind="money"),
            Column("delta", kind="money"),
            Column("source", drop=1),
        ],
        rows,
        title=f"Projected monthly cost ({summary['currency']}, {summary['hoursPerMonth']} h/month)",
        wide=wide,
    )
    typer.echo(
        f"Total monthly: {_cents(summary['totalMonthly'])} {summary['currency']} "
        f"(before {_cents(summary['before'])}, delta {_cents(summary['delta'])})"
    )
    if summary.get("base"):
        b = summary["base"]
        typer.echo(
            f"Against the base plan: {_cents(b['totalMonthly'])} -> {_cents(summary['totalMonthly'])} "
            f"{summary['currency']} ({_signed(b['delta'])})"
        )
    if summary["unpriced"]:
        typer.echo(
            f"{summary['unpriced']} resource(s) have no price: {', '.join(summary['unpricedResources'])}"
        )
    if summary.get("exchangeRate"):
        typer.echo(f"Converted at {summary['exchangeRate']['text']}")
    data = price_data_line(summary)
    if data:
        typer.echo(data)


def register(cost: typer.Typer) -> None:  # noqa: C901 - typer commands defined inside it count into its complexity
    """Add `cost projected` to the `cost` group."""

    @cost.command("projected")
    def projected(  # noqa: C901 - the command's options (format, policy, diff, output) each a branch
        pulumi_json: Path = typer.Option(
            None, "--pulumi-json", help="Output of `pulumi preview --json`", dir_okay=False
        ),
        terraform_json: Path = typer.Option(
            None,
            "--terraform-json",
            help="Output of `terraform show -json PLANFILE`",
            dir_okay=False,
        ),
        compare_to: Path = typer.Option(
            None,
            "--compare-to",
            help="The base plan (e.g. of the main branch), Pulumi or "
            "Terraform JSON: the difference against it is shown and gated",
            dir_okay=False,
        ),
        usage_file: Path = typer.Option(
            None,
            "--usage-file",
            help="Usage quantities (Infracost's infracost-usage.yml "
            "format): storage GB, requests, data processed",
            dir_okay=False,
        ),
        output: ProjectedOutput = typer.Option(
            ProjectedOutput.TABLE,
            "--output",
            "-o",
            help="table, json, ndjson or markdown (a pull-request comment)",
        ),
        budget: str = typer.Option(
            None,
            "--budget",
            help="Exit 1 when the monthly total exceeds this amount "
            "(or any resource has no price, unless --allow-unpriced)",
        ),
        policy_file: Path = typer.Option(
            None,
            "--policy",
            help="YAML cost policy: max_monthly, max_increase, "
            "max_increase_percent, resource_caps, required_tags; exit 1 on a violation",
            dir_okay=False,
        ),
        allow_unpriced: bool = typer.Option(
            False,
            "--allow-unpriced",
            help="Resources without a price do not fail --budget or --policy",
        ),
        currency: str = typer.Option(
            "USD",
            "--currency",
            help="Currency to report in (ISO 4217); other than USD "
            "converts at one stated exchange rate",
        ),
        fx_date: str = typer.Option(
            None,
            "--fx-date",
            help="Date of the exchange rate, YYYY-MM-DD (the latest rate on "
            "or before it; default: the latest imported)",
        ),
        fx_rates: Path = typer.Option(
            None,
            "--fx-rates",
            help="Rates file (ECB CSV or date,currency,rate) instead of the imported table",
            dir_okay=False,
        ),
        region: str = typer.Option(
            None,
            "--region",
            help="AWS region for resources that do not name one "
            "(default: the plan's aws:region or provider region)",
        ),
        specs: list[Path] = typer.Option(
            None,
            "--specs",
            help="Directory of YAML price specs (repeatable; default FINFOCUS_HOME/specs)",
        ),
        plugins: bool = typer.Option(
            True, "--plugins/--no-plugins", help="Ask installed pricing plugins first"
        ),
        wide: bool = WIDE_OPTION,
    ) -> None:
        """Monthly cost of a Pulumi or Terraform plan (730 h/month): per resource and component,
        before, after, delta; gated by --budget or --policy (exit 1), failing closed."""
        from services.pricing.config import PricingSettings
        from services.pricing.policy import budget_violations, evaluate, load_policy
        from services.pricing.projected import compare_to_base
        from services.pricing.usage import UsageFile

        if (pulumi_json is None) == (terraform_json is None):
            fail("give one plan: --pulumi-json FILE or --terraform-json FILE", 2)
        limit = policy = usage = when = None
        if budget is not None:
            try:
                limit = Decimal(budget)
            except InvalidOperation:
                fail(f"--budget {budget!r} is not a number", 2)
            if not limit.is_finite() or limit < 0:
                fail(f"--budget {budget!r} must be a non-negative amount", 2)
        currency = currency.upper()
        try:
            if fx_date:
                try:
                    when = date.fromisoformat(fx_date)
                except ValueError:
                    raise ValueError(f"--fx-date {fx_date!r} is not a date (YYYY-MM-DD)") from None
            if policy_file is not None:
                policy = load_policy(policy_file)
            if usage_file is not None:
                usage = UsageFile.load(usage_file)
            settings = PricingSettings()
            fx = _conversion(currency, when, fx_rates, settings)
            path = pulumi_json or terraform_json
            plan = _read_plan(path, "Pulumi" if pulumi_json else "Terraform")
            resources, fmt = _resources(
                plan, terraform_format=terraform_json is not None, region=region, usage=usage
            )
            base_resources = None
            if compare_to is not None:
                from services.pricing.terraform import is_terraform_plan

                base_plan = _read_plan(compare_to, "base")
                base_resources, _ = _resources(
                    base_plan,
                    terraform_format=is_terraform_plan(base_plan),
                    region=region,
                    usage=usage,
                )
        except ValueError as exc:
            fail(str(exc), 2)
        spec_dirs = list(specs or []) or [settings.specs_dir]

        async def go() -> tuple[dict, dict | None]:
            doc = await project(
                resources,
                fmt,
                currency=currency,
                spec_dirs=spec_dirs,
                plugins=plugins,
                settings=settings,
                fx=fx,
            )
            base = None
            if base_resources is not None:
                base = await project(
                    base_resources,
                    fmt,
                    currency=currency,
                    spec_dirs=spec_dirs,
                    plugins=plugins,
                    settings=settings,
                    fx=fx,
                )
            return doc, base

        doc, base = run(go())
        if base is not None:
            compare_to_base(doc, base)
        violations = None
        if policy is not None or limit is not None:
            violations = []
            if policy is not None:
                violations += evaluate(doc, policy, allow_unpriced=allow_unpriced)
            if limit is not None:
                violations += [
                    v
                    for v in budget_violations(doc, limit, allow_unpriced=allow_unpriced)
                    if v.rule != "unpriced" or policy is None
                ]  # unpriced: listed once
            checked = " and ".join(
                x
                for x in (
                    f"budget {_cents(str(limit))} {currency}" if limit is not None else "",
                    f"policy {policy_file.name}" if policy_file else "",
                )
                if x
            )
            doc["gate"] = {
                "checked": checked,
                "passed": not violations,
                "violations": [v.public() for v in violations],
            }
        summary = doc["summary"]
        if output is ProjectedOutput.JSON:
            print_json(doc)
        elif output is ProjectedOutput.NDJSON:
            extra = (
                {"exchangeRate": summary["exchangeRate"]["text"]}
                if summary.get("exchangeRate")
                else {}
            )
            print_ndjson([{**r, **extra} for r in doc["resources"]])
        elif output is ProjectedOutput.MARKDOWN:
            typer.echo(markdown_report(doc, limit), nl=False)
        else:
            _table(doc, wide=wide)
        for name, error in summary.get("pluginFailures", {}).items():
            err_console.print(f"[yellow]warning:[/yellow] plugin {name} failed: {error}")
        if output is not ProjectedOutput.TABLE and summary.get("exchangeRate"):
            err_console.print(
                f"converted at {summary['exchangeRate']['text']}", highlight=False, soft_wrap=True
            )
        if violations:
            for v in violations:
                err_console.print(
                    f"[red]{v.rule}:[/red] {v.reason}", highlight=False, soft_wrap=True
                )
            raise typer.Exit(1)


def register_groups(app: typer.Typer) -> None:  # noqa: C901 - typer commands defined inside it count into its complexity
    """Add `finfocus fx ...` and `finfocus prices ...`."""
    fx = typer.Typer(
        help="Exchange rates for `cost projected --currency` (ECB reference rates or date,currency,rate).",
        no_args_is_help=True,
    )
    app.add_typer(fx, name="fx")
    prices = typer.Typer(
        help="The price snapshots `cost projected` uses: where they come from, how old, refresh.",
        no_args_is_help=True,
    )
    app.add_typer(prices, name="prices")

    @fx.command("import")
    def fx_import(
        file: Path = typer.Argument(
            ...,
            help="ECB CSV (eurofxref.csv, eurofxref-hist.csv) or a date,currency,rate file",
            dir_okay=False,
        ),
        base: str = typer.Option(
            "EUR", "--base", help="Base currency of a date,currency,rate file (units per 1 base)"
        ),
        source: str = typer.Option(
            None,
            "--source",
            help="Where the rates come from (default: the ECB for its CSV, else the file name)",
        ),
    ) -> None:
        """Import a rates file into pricing's dated exchange-rate table (a re-imported day is replaced)."""
        from services.pricing.fx import parse_rates

        try:
            rates = parse_rates(file.read_text(), base=base, source=source)
        except OSError as exc:
            fail(f"{file}: {exc.strerror}", 2)
        except ValueError as exc:
            fail(f"{file}: {exc}", 2)
        if source is None and rates[0].source == "file":
            rates = [type(r)(r.day, r.base, r.currency, r.rate, file.name) for r in rates]

        async def go() -> int:
            from finfocus.db import connect, migrate_url
            from services.pricing.app import MIGRATIONS_DIR
            from services.pricing.config import PricingSettings
            from services.pricing.store import store_fx_rates

            url = PricingSettings().database
            await migrate_url(url, "pricing", MIGRATIONS_DIR)
            conn = await connect(url)
            try:
                return await store_fx_rates(conn, rates)
            finally:
                await conn.close()

        n = run(go())
        days = sorted({r.day for r in rates})
        typer.echo(
            f"imported {n} rates of {len({r.currency for r in rates})} currencies per 1 {rates[0].base}, "
            f"{days[0]} to {days[-1]} ({rates[0].source})"
        )

    @fx.command("show")
    def fx_show(
        on: str = typer.Option(
            None, "--date", help="The rates of this date (the latest on or before it)"
        ),
        currency: str = typer.Option(None, "--currency", help="Only this currency"),
        wide: bool = WIDE_OPTION,
    ) -> None:
        """Imported exchange rates: the latest day's (or --date's), per 1 base currency."""
        from services.pricing.config import PricingSettings
        from services.pricing.fx import RateTable
        from services.pricing.store import fetch_fx_rates

        async def go():
            import asyncpg

            from finfocus.db import reader

            try:
                async with reader(PricingSettings().database) as conn:
                    return await fetch_fx_rates(conn)
            except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
                fail("no exchange rates yet: run `finfocus fx import FILE`")

        table = RateTable(run(go()))
        try:
            when = date.fromisoformat(on) if on else None
        except ValueError:
            fail(f"--date {on!r} is not a date (YYYY-MM-DD)", 2)
        rows = table.latest(when, currency.upper() if currency else None)
        if not rows:
            fail(
                "no exchange rate"
                + (f" on or before {when}" if when else "")
                + (f" for {currency}" if currency else "")
            )
        print_table(
            ["date", "base", "currency", "rate", "source"],
            [[r.day, r.base, r.currency, format(r.rate, "f"), r.source] for r in rows],
            title="Exchange rates",
            wide=wide,
            drop={"source": 1},
        )

    @prices.command("show")
    def prices_show(
        output: str = typer.Option("table", "--output", "-o", help="table or json"),
        wide: bool = WIDE_OPTION,
    ) -> None:
        """Each cloud's price snapshot: its source, effective date, age and size."""
        from services.pricing.config import PricingSettings
        from services.pricing.snapshot import BUNDLED_DIR, PriceSnapshot

        settings = PricingSettings()
        try:
            infos = [
                i.public() for i in PriceSnapshot.load(settings.home / "prices", BUNDLED_DIR).infos
            ]
        except ValueError as exc:
            fail(str(exc), 2)
        if output == "json":
            print_json({"snapshots": infos})
            return
        print_table(
            ["cloud", "source", "effective", "age (days)", "prices", "history", "file"],
            [
                [
                    i["cloud"],
                    i["source"],
                    i["effectiveDate"],
                    i["ageDays"],
                    i["prices"],
                    i["history"],
                    "bundled" if i["bundled"] else i["file"],
                ]
                for i in infos
            ],
            title="Price snapshots",
            wide=wide,
            drop={"file": 3, "history": 2, "source": 1},
        )

    @prices.command("refresh")
    def prices_refresh(
        cloud: str = typer.Argument(
            ...,
            help="aws (Price List bulk offer files), azure (Retail Prices API) or gcp "
            "(Cloud Billing Catalog API; key from the gcp-billing-api-key secret)",
        ),
        region: list[str] = typer.Option(
            None, "--region", help="Regions to fetch (repeatable; default: the five largest)"
        ),
        base_url: str = typer.Option(
            None, "--base-url", help="Another endpoint for the API (a mirror or proxy)"
        ),
        timeout: float = typer.Option(120.0, "--timeout", help="Seconds per request"),
        catalog: bool = typer.Option(
            False,
            "--catalog",
            help="Also record the prices in the instance catalog "
            "(pricing.v_catalog_prices, source list:<cloud>) with their effective dates",
        ),
        api: str = typer.Option(
            "bulk",
            "--api",
            help="aws only: bulk (the public offer files, no credentials) or "
            "query (the Price List Query API through boto3, with AWS credentials)",
        ),
    ) -> None:
        """Fetch current list prices from the cloud's public API into FINFOCUS_HOME/prices/<cloud>.json,
        keeping superseded prices in its history."""
        import httpx

        from finfocus.secrets import secrets_from_environment
        from services.pricing import sources
        from services.pricing.config import PricingSettings

        if cloud not in {"aws", "azure", "gcp"}:
            fail(f"unknown price source {cloud!r}: aws, azure or gcp", 2)
        options: dict = {}
        if region:
            options["regions"] = list(region)
        if base_url:
            options["base"] = base_url.rstrip("/")
        if api not in {"bulk", "query"} or (api == "query" and cloud != "aws"):
            fail("--api is bulk or query, and query is for aws only", 2)
        settings = PricingSettings()
        secrets = secrets_from_environment()
        if api == "query":
            options["api"] = "query"
            options["pricing"] = _aws_pricing_client(secrets, options.pop("base", None), timeout)
        try:
            with httpx.Client(timeout=timeout, follow_redirects=True) as client:
                report = sources.refresh(
                    cloud, client, settings.home / "prices", secrets=secrets, **options
                )
        except sources.SourceError as exc:
            fail(str(exc))
        typer.echo(
            f"{cloud}: {report['prices']} prices written to {report['file']} ({report['new']} new, "
            f"{report['changed']} changed, {report['unchanged']} unchanged, {report['withdrawn']} withdrawn)"
        )
        if catalog:
            changed, unchanged = run(record_in_catalog(settings.database, Path(report["file"])))
            typer.echo(
                f"catalog: {changed} new or changed, {unchanged} unchanged (source list:{cloud})"
            )

    @prices.command("record")
    def prices_record(
        cloud: list[str] = typer.Argument(None, help="aws, azure, gcp (default: all three)"),
    ) -> None:
        """Record the current snapshot prices (refreshed, else bundled) in the instance catalog, so
        `catalog show --history` has them with their effective dates."""
        from services.pricing.config import PricingSettings
        from services.pricing.snapshot import BUNDLED_DIR, CLOUDS

        settings = PricingSettings()
        for name in cloud or list(CLOUDS):
            if name not in CLOUDS:
                fail(f"unknown cloud {name!r}: aws, azure or gcp", 2)
            path = settings.home / "prices" / f"{name}.json"
            path = path if path.is_file() else BUNDLED_DIR / f"{name}.json"
            changed, unchanged = run(record_in_catalog(settings.database, path))
            typer.echo(
                f"{name}: {changed} new or changed, {unchanged} unchanged in the catalog (source list:{name}, {path})"
            )


def _aws_pricing_client(secrets, endpoint: str | None, timeout: float):
    """A boto3 `pricing` client (us-east-1); keys from the `aws/credentials` secret
    (FINFOCUS_SECRET_AWS_CREDENTIALS_ACCESS_KEY_ID, ..._SECRET_ACCESS_KEY, or Vault) when set,
    else boto3's own chain (environment, profile, instance role)."""
    import boto3
    from botocore.config import Config

    keys = {}
    key_id, secret = (
        secrets.get("aws/credentials", "access_key_id"),
        secrets.get("aws/credentials", "secret_access_key"),
    )
    if key_id is not None and secret is not None:
        keys = {"aws_access_key_id": key_id.reveal(), "aws_secret_access_key": secret.reveal()}
        token = secrets.get("aws/credentials", "session_token")
        if token is not None:
            keys["aws_session_token"] = token.reveal()
    return boto3.client(
        "pricing",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3}),
        **keys,
    )


async def record_in_catalog(database_url: str, path: Path) -> tuple[int, int]:
    """Record one snapshot file's prices in pricing.catalog_prices (migrating the schema first)."""
    import json
    from datetime import UTC, datetime

    from finfocus.db import connect, migrate_url
    from services.pricing.app import MIGRATIONS_DIR
    from services.pricing.snapshot import catalog_rows
    from services.pricing.store import record_prices

    rows = catalog_rows(json.loads(path.read_text()))  # noqa: ASYNC240 - a CLI command, nothing else on the loop
    await migrate_url(database_url, "pricing", MIGRATIONS_DIR)
    conn = await connect(database_url)
    try:
        return await record_prices(conn, rows, datetime.now(UTC))
    finally:
        await conn.close()
