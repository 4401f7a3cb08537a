"""Pricing's command groups: `cost actual|projected`, `plugin`, `catalog`, `comment`.

Loaded by name by the root CLI (`finfocus/cli/__init__.py`, SERVICE_COMMAND_MODULES)."""

from __future__ import annotations

import typer

from services.pricing import comment_cli
from services.pricing.cli import catalog, cost, plugin


def register(app: typer.Typer) -> None:
    """Add this service's command groups to the `finfocus` app (in the order `--help` lists them)."""
    cost.register(app)
    plugin.register(app)
    catalog.register(app)
    comment_cli.register(app)
