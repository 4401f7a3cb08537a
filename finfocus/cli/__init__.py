"""The `finfocus` command line: one Typer app, each command group in its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="finfocus",
    help="FinFocus: turn cloud billing data into action (ingest, pricing, anomalies, "
    "forecasts, remediation) on a Kafka bus.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: modules under finfocus.cli that register commands on `app` through `register(app)`
COMMAND_MODULES = (
    "stack",
    "ingest",
    "export",
    "cost",
    "plugin",
    "catalog",
    "anomalies",
    "forecast",
    "budget",
    "remediation",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"finfocus.cli.{_name}").register(app)

#: services whose own command group (`services/<name>/cli.py`, `register(app)`) is loaded by
#: name: finfocus/ never imports a service module statically
SERVICE_COMMAND_MODULES = ("api",)

for _name in SERVICE_COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"services.{_name}.cli")
    except ModuleNotFoundError as _exc:  # a service not installed: its commands are absent
        if not (_exc.name or "").startswith(f"services.{_name}"):
            raise
        continue
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


@app.command()
def version() -> None:
    """Print the FinFocus version."""
    from finfocus import __version__

    typer.echo(__version__)
