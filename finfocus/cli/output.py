"""Shared output for every command: `--output table|json|ndjson`, JSON money as strings, exit codes.

Exit codes: 0 success, 1 failure, 2 usage error (Typer's own for bad arguments).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    """How a command prints its results."""

    TABLE = "table"
    JSON = "json"
    NDJSON = "ndjson"


OUTPUT_OPTION = typer.Option(
    OutputFormat.TABLE, "--output", "-o", help="table for people, json or ndjson for programs"
)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(obj: Any, *, indent: bool = False) -> str:
    """JSON with Decimal money as strings (never floats) and ISO dates."""
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(obj, default=_default, option=option | orjson.OPT_PASSTHROUGH_DATETIME).decode()


def print_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj, indent=True) + "\n")
    sys.stdout.flush()


def print_ndjson(rows: Iterable[Any]) -> None:
    """One JSON object per line, written as rows come: large results stream."""
    write = sys.stdout.write
    for row in rows:
        write(to_json(row) + "\n")
    sys.stdout.flush()


def print_table(columns: list[str], rows: Iterable[Iterable[Any]], *, title: str | None = None) -> None:
    table = Table(title=title, header_style="bold")
    for column in columns:
        justify: Literal["right", "left"] = (
            "right" if column.lower() in {"cost", "total", "amount", "monthly"} else "left"
        )
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(*["" if v is None else (format(v, "f") if isinstance(v, Decimal) else str(v)) for v in row])
    console.print(table)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error for people on stderr and exit with `code` (1 failure, 2 usage)."""
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a missing embedded stack becomes a clear error, not a trace."""
    from finfocus.settings import EmbeddedStackNotRunning

    try:
        return asyncio.run(coro)
    except EmbeddedStackNotRunning as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot reach a service: {exc}")


def command_runner(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Decorator form of `run` for async command bodies."""

    def wrapper(*args: Any, **kwargs: Any) -> T:
        return run(fn(*args, **kwargs))

    return wrapper
