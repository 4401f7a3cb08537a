"""The `finfocus` command line: one Typer app; the embedded stack's commands are here, each
service's command group lives in that service (`services/<name>/cli`).

The app is built on first use (`finfocus.cli.app`, `main()`), not when this package is
imported: a service's command module imports `finfocus.cli.output`, and building the app
imports the service modules, so building at import time would be a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

#: modules under finfocus.cli that register commands on `app` through `register(app)`: the
#: embedded stack (up, down, status, serve, demo...) only
COMMAND_MODULES = ("stack",)

#: each service owns its command group (`services/<name>/cli.py` or the package
#: `services/<name>/cli/`, with `register(app)`), loaded by name in this order (the order of
#: `--help`): finfocus/ never imports a service module statically
SERVICE_COMMAND_MODULES = ("ingest", "pricing", "anomaly", "forecast", "remediation", "api")

_app: typer.Typer | None = None


def build() -> typer.Typer:
    """The `finfocus` app with every command group registered (built once)."""
    global _app
    if _app is not None:
        return _app
    import typer

    app = typer.Typer(
        name="finfocus",
        help="FinFocus: turn cloud billing data into action (ingest, pricing, anomalies, "
        "forecasts, remediation) on a Kafka bus.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"finfocus.cli.{name}").register(app)
    for name in SERVICE_COMMAND_MODULES:
        try:
            module = importlib.import_module(f"services.{name}.cli")
        except ModuleNotFoundError as exc:  # a service not installed: its commands are absent
            if not (exc.name or "").startswith(f"services.{name}"):
                raise
            continue
        module.register(app)

    @app.command()
    def version() -> None:
        """Print the FinFocus version."""
        from finfocus import __version__

        typer.echo(__version__)

    _app = app
    return app


def __getattr__(name: str):
    if name == "app":  # `from finfocus.cli import app`
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point."""
    build()()
