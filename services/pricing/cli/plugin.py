"""`finfocus plugin list|validate|install|actual`: pricing plugins (and YAML price specs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    WIDE_OPTION,
    OutputFormat,
    err_console,
    fail,
    print_json,
    print_ndjson,
    print_table,
    run,
)


async def _health(settings) -> dict[str, dict]:
    """What the pricing service last recorded about its plugins; {} when it cannot be read."""
    try:
        from finfocus.db import reader

        async with reader(settings.database) as conn:
            return {
                r["plugin"]: dict(r)
                for r in await conn.fetch("SELECT * FROM pricing.v_plugin_health")
            }
    except Exception:  # noqa: BLE001 - no stack running, or pricing never started: no health to show
        return {}


async def _check_plugin(directory: Path, timeout: float) -> dict:  # noqa: ASYNC109 - the plugin's call deadline, handed to PluginHost
    """Start the plugin, complete the handshake and ask its name; stop it again."""
    from services.pricing.host import PluginHost, load_manifest

    ref = load_manifest(directory)
    host = PluginHost([ref], timeout=timeout, retries=0)
    await host.start()
    try:
        report = host.report()[ref.name]
        if report["state"] != "running":
            raise ValueError(f"plugin did not start: {report['last_error']}")
        return {"name": ref.name, "version": ref.manifest.version, "state": "ok"}
    finally:
        await host.stop()


def register(app: typer.Typer) -> None:  # noqa: C901 - typer commands defined inside it count into its complexity
    """Add `finfocus plugin ...` to the `finfocus` app."""
    plugin = typer.Typer(
        help="Pricing plugins: list, validate (plugins and price specs), install, actual costs.",
        no_args_is_help=True,
    )
    app.add_typer(plugin, name="plugin")

    @plugin.command("list")
    def list_(output: OutputFormat = OUTPUT_OPTION, wide: bool = WIDE_OPTION) -> None:
        """Installed plugins (FINFOCUS_HOME/plugins/<name>/<version>/), built-ins and their health."""
        from services.pricing.config import PricingSettings
        from services.pricing.host import discover
        from services.pricing.plugins import BUILTINS

        settings = PricingSettings()
        refs, problems = discover(settings.plugins_dir, all_versions=True)
        newest = {r.name: r.manifest.version for r in discover(settings.plugins_dir)[0]}
        health = run(_health(settings))
        rows: list[dict[str, Any]] = [
            {
                "name": r.name,
                "version": r.manifest.version,
                "kind": "installed",
                "active": newest.get(r.name) == r.manifest.version,
                "path": str(r.directory),
                "description": r.manifest.description,
                "health": health.get(r.name, {}).get("state"),
            }
            for r in refs
        ]
        rows += [
            {
                "name": name,
                "version": "builtin",
                "kind": "builtin",
                "active": None,
                "path": None,
                "description": b.description,
                "health": health.get(name, {}).get("state"),
            }
            for name, b in BUILTINS.items()
        ]
        invalid = [{"path": str(path), "error": error} for path, error in problems]
        if output is OutputFormat.JSON:
            print_json({"plugins": rows, "invalid": invalid})
        elif output is OutputFormat.NDJSON:
            print_ndjson(rows)
        else:
            print_table(
                ["name", "version", "kind", "active", "health", "description"],
                [
                    [
                        r["name"],
                        r["version"],
                        r["kind"],
                        {True: "yes", False: "no", None: ""}[r["active"]],
                        r["health"] or "",
                        r["description"] or "",
                    ]
                    for r in rows
                ],
                title="Pricing plugins",
                wide=wide,
            )
            for item in invalid:
                err_console.print(f"[yellow]invalid:[/yellow] {item['path']}: {item['error']}")

    @plugin.command("validate")
    def validate(
        path: Path = typer.Argument(
            ...,
            exists=True,
            help="A plugin directory (plugin.yaml, or a finfocus-spec plugin's executable), or a YAML price spec file or directory",
        ),
        timeout: float = typer.Option(
            10.0, help="Seconds to wait for the plugin to start and answer"
        ),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Check a plugin (manifest, handshake, name) or price specs (schema, currency, prices)."""
        from services.pricing.specs import load_file, load_specs

        results: list[dict] = []
        from services.pricing.manifest import _spec_layout

        if path.is_dir() and ((path / "plugin.yaml").exists() or _spec_layout(path) is not None):
            try:
                results.append({"path": str(path), **run(_check_plugin(path, timeout))})
            except ValueError as exc:
                results.append({"path": str(path), "state": "invalid", "error": str(exc)})
        elif path.is_dir():
            book, problems = load_specs(path)
            results.append(
                {
                    "path": str(path),
                    "state": "ok" if not problems else "invalid",
                    "specs": len(book),
                }
            )
            results += [{"path": p.file, "state": "invalid", "error": p.error} for p in problems]
        else:
            try:
                results.append({"path": str(path), "state": "ok", "specs": len(load_file(path))})
            except ValueError as exc:
                results.append({"path": str(path), "state": "invalid", "error": str(exc)})
        bad = [r for r in results if r["state"] != "ok"]
        if output is OutputFormat.JSON:
            print_json({"valid": not bad, "results": results})
        elif output is OutputFormat.NDJSON:
            print_ndjson(results)
        else:
            for r in results:
                mark = "[green]ok[/green]" if r["state"] == "ok" else "[red]invalid[/red]"
                err_console.print(
                    f"{mark} {r['path']}" + (f": {r['error']}" if r.get("error") else "")
                )
        if bad:
            raise typer.Exit(1)

    @plugin.command("install")
    def install(
        path: Path = typer.Argument(
            ...,
            exists=True,
            file_okay=False,
            help="Plugin directory: a plugin.yaml, or a finfocus-spec plugin's executable (and plugin.manifest.json)",
        ),
        force: bool = typer.Option(
            False, "--force", help="Replace an installed copy of the same version"
        ),
        check: bool = typer.Option(
            True, "--check/--no-check", help="Start the plugin once before installing it"
        ),
    ) -> None:
        """Copy a plugin to FINFOCUS_HOME/plugins/<name>/<version>/ (the newest version is used)."""
        from services.pricing.config import PricingSettings
        from services.pricing.host import load_manifest

        try:
            ref = load_manifest(path)
            if check:
                run(_check_plugin(path, 10.0))
        except ValueError as exc:
            fail(f"{path} is not a valid plugin: {exc}")
        target = PricingSettings().plugins_dir / ref.name / ref.manifest.version
        if target.exists():
            if not force:
                fail(
                    f"{ref.name} {ref.manifest.version} is already installed at {target} (use --force to replace it)"
                )
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        typer.echo(f"installed {ref.name} {ref.manifest.version} in {target}")

    @plugin.command("actual")
    def actual(
        name: str = typer.Argument(..., help="An installed (or enabled built-in) plugin"),
        start: str = typer.Option(..., "--from", help="Start, inclusive (YYYY-MM-DD or RFC 3339)"),
        end: str = typer.Option(..., "--to", help="End, exclusive (YYYY-MM-DD or RFC 3339)"),
        resource_id: str = typer.Option(
            "",
            "--resource-id",
            help="The resource to ask about, as the plugin names it (e.g. i-0abc, namespace/default)",
        ),
        tags: list[str] = typer.Option(
            None, "--tag", help="key=value handed to the plugin (repeatable)"
        ),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Actual cost over [from, to) as a plugin reports it (GetActualCost; both plugin protocols)."""
        from decimal import Decimal

        from services.pricing.config import PricingSettings
        from services.pricing.plugins import make_host

        window = [_instant(start, "--from"), _instant(end, "--to")]
        attributes = {}
        for item in tags or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                fail(f"--tag {item!r}: use key=value", 2)
            attributes[key] = value
        try:
            host = make_host(PricingSettings())
        except ValueError as exc:
            fail(str(exc), 2)
        ref = next((r for r in host.plugins if r.name == name), None)
        if ref is None:
            fail(
                f"no plugin {name!r}; known: {', '.join(host.names) or 'none'} (finfocus plugin list)",
                2,
            )

        async def go() -> list:
            try:
                return await host.actual(ref, resource_id, window[0], window[1], attributes)
            finally:
                await host.stop()

        rows = run(go())
        report = host.report()[name]
        if report["failures"]:
            fail(f"plugin {name} failed: {report['last_error']}")
        results = [
            {
                "start": r.start,
                "end": r.end,
                "cost": r.cost,
                "currency": r.currency,
                "usage_amount": r.usage_amount or None,
                "usage_unit": r.usage_unit or None,
                "source": r.source,
                "labels": dict(r.labels),
            }
            for r in rows
        ]
        totals: dict[str, Decimal] = {}
        for r in results:
            totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + Decimal(r["cost"])
        if output is OutputFormat.JSON:
            print_json(
                {
                    "plugin": name,
                    "resource_id": resource_id,
                    "from": window[0],
                    "to": window[1],
                    "results": results,
                    "totals": {k: format(v, "f") for k, v in totals.items()},
                }
            )
        elif output is OutputFormat.NDJSON:
            print_ndjson(results)
        else:
            print_table(
                ["start", "end", "cost", "currency", "usage", "source"],
                [
                    [
                        r["start"],
                        r["end"],
                        r["cost"],
                        r["currency"],
                        f"{r['usage_amount']} {r['usage_unit'] or ''}".strip()
                        if r["usage_amount"]
                        else "",
                        r["source"],
                    ]
                    for r in results
                ],
                title=f"Actual cost from {name}",
            )
            typer.echo(
                "Total: "
                + (
                    ", ".join(f"{format(v, 'f')} {k}" for k, v in totals.items())
                    or "no cost reported"
                )
            )


def _instant(text: str, flag: str) -> str:
    """RFC 3339 in UTC for a date or a timestamp; a usage error otherwise."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{flag} {text!r} is not a date (YYYY-MM-DD) or an RFC 3339 time", 2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
