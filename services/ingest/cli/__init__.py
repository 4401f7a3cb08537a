"""Ingest's command groups: `ingest` (imports, jobs, the HTTP intake) and `export`.

Loaded by name by the root CLI (`finfocus/cli/__init__.py`, SERVICE_COMMAND_MODULES)."""

from __future__ import annotations

import typer

from services.ingest.cli import export, ingest


def register(app: typer.Typer) -> None:
    """Add this service's command groups to the `finfocus` app (in the order `--help` lists them)."""
    ingest.register(app)
    export.register(app)
