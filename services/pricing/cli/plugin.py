"""`finfocus plugin list|validate|install`: pricing plugins (and YAML price specs)."""

from __future__ import annotations

import shutil
from pathlib import Path

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
            return {r["plugin"]: dict(r) for r in await conn.fetch("SELECT * FROM pricing.v_plugin_health")}
    except Exception:  # noqa: BLE001 - no stack running, or pricing never started: no health to show
        return {}


async def _check_plugin(directory: Path, timeout: float) -> dict:
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


def register(app: typer.Typer) -> None:
    """Add `finfocus plugin ...` to the `finfocus` app."""
    plugin = typer.Typer(help="Pricing plugins: list, validate (plugins and price specs), install.", no_args_is_help=True)
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
        rows = [
            {"name": r.name, "version": r.manifest.version, "kind": "installed",
             "active": newest.get(r.name) == r.manifest.version, "path": str(r.directory),
             "description": r.manifest.description, "health": health.get(r.name, {}).get("state")}
            for r in refs
        ]
        rows += [
            {"name": name, "version": "builtin", "kind": "builtin", "active": None, "path": None,
             "description": b.description, "health": health.get(name, {}).get("state")}
            for name, b in BUILTINS.items()
        ]
        invalid = [{"path": str(path), "error": error} for path, error in problems]
        if output is OutputFormat.JSON:
            print_json({"plugins": rows, "invalid": invalid})
        elif output is OutputFormat.NDJSON:
            print_ndjson(rows)
        else:
            print_table(["name", "version", "kind", "active", "health", "description"],
                        [[r["name"], r["version"], r["kind"], {True: "yes", False: "no", None: ""}[r["active"]],
                          r["health"] or "", r["description"] or ""] for r in rows], title="Pricing plugins",
                        wide=wide)
            for item in invalid:
                err_console.print(f"[yellow]invalid:[/yellow] {item['path']}: {item['error']}")

    @plugin.command("validate")
    def validate(
        path: Path = typer.Argument(..., exists=True, help="A plugin directory (with plugin.yaml), or a YAML price spec file or directory"),
        timeout: float = typer.Option(10.0, help="Seconds to wait for the plugin to start and answer"),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Check a plugin (manifest, handshake, name) or price specs (schema, currency, prices)."""
        from services.pricing.specs import load_file, load_specs

        results: list[dict] = []
        if path.is_dir() and (path / "plugin.yaml").exists():
            try:
                results.append({"path": str(path), **run(_check_plugin(path, timeout))})
            except ValueError as exc:
                results.append({"path": str(path), "state": "invalid", "error": str(exc)})
        elif path.is_dir():
            book, problems = load_specs(path)
            results.append({"path": str(path), "state": "ok" if not problems else "invalid", "specs": len(book)})
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
                err_console.print(f"{mark} {r['path']}" + (f": {r['error']}" if r.get("error") else ""))
        if bad:
            raise typer.Exit(1)

    @plugin.command("install")
    def install(
        path: Path = typer.Argument(..., exists=True, file_okay=False, help="Plugin directory with a plugin.yaml"),
        force: bool = typer.Option(False, "--force", help="Replace an installed copy of the same version"),
        check: bool = typer.Option(True, "--check/--no-check", help="Start the plugin once before installing it"),
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
                fail(f"{ref.name} {ref.manifest.version} is already installed at {target} (use --force to replace it)")
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        typer.echo(f"installed {ref.name} {ref.manifest.version} in {target}")
