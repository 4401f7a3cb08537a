"""The forecast service's command groups: `forecast show|month-end` and `budget`.

Loaded by name by the root CLI (`finfocus/cli/__init__.py`, SERVICE_COMMAND_MODULES)."""

from __future__ import annotations

import typer

from services.forecast.cli import budget, forecast


def register(app: typer.Typer) -> None:
    """Add this service's command groups to the `finfocus` app (in the order `--help` lists them)."""
    forecast.register(app)
    budget.register(app)
