"""Shared output for every command: `--output table|json|ndjson`, JSON money as strings, exit codes.

Exit codes: 0 success, 1 failure, 2 usage error (Typer's own for bad arguments).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import orjson
import typer
from rich import box
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
    return orjson.dumps(
        obj, default=_default, option=option | orjson.OPT_PASSTHROUGH_DATETIME
    ).decode()


def print_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj, indent=True) + "\n")
    sys.stdout.flush()


def print_ndjson(rows: Iterable[Any]) -> None:
    """One JSON object per line, written as rows come: large results stream."""
    write = sys.stdout.write
    for row in rows:
        write(to_json(row) + "\n")
    sys.stdout.flush()


#: column names that hold money: right-aligned, rounded to the cent, never cut
MONEY_COLUMNS = {
    "cost",
    "total",
    "amount",
    "monthly",
    "expected",
    "realised",
    "actual",
    "impact",
    "projected",
    "remainder",
    "budget",
    "spent",
    "savings",
    "forecast",
    "limit",
}
ID_COLUMNS = {"id", "command", "anomaly", "job", "recommendation", "token"}
#: column names that hold dates or times: never cut, never wrapped (a column gives way whole)
DATE_COLUMNS = {
    "date",
    "day",
    "at",
    "from",
    "to",
    "start",
    "end",
    "through",
    "effective",
    "raised",
    "finished",
    "issued",
    "expires",
    "detected",
    "period",
    "month",
    "since",
    "until",
    "updated",
    "created",
}


def column_for(name: str) -> Column:
    """A column's behaviour from its name (the `print_table` callers' conventions)."""
    low = name.lower()
    if low in ID_COLUMNS or low.endswith(" id") or low.endswith("_id"):
        return Column(name, kind="id")
    if low in DATE_COLUMNS or low.endswith(" at"):
        return Column(name, kind="date")
    if low in MONEY_COLUMNS or low.startswith("monthly") or low.endswith(" cost"):
        return Column(name, kind="money")
    if low in {
        "days",
        "rows",
        "lines",
        "actions",
        "measured",
        "count",
        "%",
        "share",
        "score",
        "price",
        "prices",
        "changed",
        "unchanged",
        "refused",
        "version",
        "read",
        "published",
        "rejected",
        "used",
        "alerts",
        "age (days)",
        "history",
        "rate",
        "top",
    }:
        return Column(name, kind="number")
    if low in {
        "value",
        "resource",
        "dimension",
        "scope",
        "target",
        "group",
        "name",
        "totals",
    }:  # folded, never shortened
        return Column(name, kind="key")
    if low == "":
        return Column(name, kind="id")
    return Column(name)


def print_table(
    columns: list[str | Column],
    rows: Iterable[Iterable[Any]],
    *,
    title: str | None = None,
    wide: bool = False,
    drop: dict[str, int] | None = None,
) -> None:
    """A table whose column behaviour follows from the column names (see `column_for`; a
    `Column` given instead says its own); `drop` gives columns that make way on narrow
    terminals (name: order, higher first)."""
    from dataclasses import replace

    specs = [c if isinstance(c, Column) else column_for(c) for c in columns]
    specs = [replace(s, drop=(drop or {}).get(s.name, s.drop)) for s in specs]
    render_table(
        specs,
        (
            [_money_cell(v) if specs[i].kind == "money" else v for i, v in enumerate(row)]
            for row in rows
        ),
        title=title,
        wide=wide,
    )


def _money_cell(value: Any) -> Any:
    from finfocus.cli.vocab import cents

    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return cents(value)
    if isinstance(value, str):
        try:
            return cents(Decimal(value))
        except ArithmeticError:
            return value
    return value


WIDE_OPTION = typer.Option(
    False, "--wide", help="every column, long text folded over lines instead of shortened"
)

SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Column:
    """A table column and how it behaves on a narrow terminal.

    `kind`: `id` (never cut, never wrapped: people copy it), `date` (never cut, never wrapped),
    `money`/`number` (never cut, right-aligned), `key` (a group value: folded over lines, never shortened), `chart`,
    `text` (shortened with an ellipsis; `--wide` folds it; the `show` command has it whole).
    `drop`: 0 never; columns with higher numbers are left out first when the table would not
    fit (listed under the table; `--wide` keeps them all).
    """

    name: str
    kind: str = "text"
    drop: int = 0
    prefix: bool = False  # an id every command accepts as a unique prefix: shortened, like git


def unique_prefixes(ids: list[str], shortest: int = 12) -> list[str]:
    """The shortest prefix (at least `shortest` characters) that tells each id from the others."""
    out = []
    for x in ids:
        n = min(shortest, len(x))
        while n < len(x) and any(o != x and o.startswith(x[:n]) for o in ids):
            n += 1
        out.append(x[:n])
    return out


def resolve_prefix(what: str, prefix: str, found: list[str]) -> str:
    """The one id among `found` (the ids starting with `prefix`) that `prefix` names, like git:
    the id itself, or the only one it starts. Exit 1 when none does, exit 2 (a usage error,
    with the candidates) when several do."""
    if prefix in found:
        return prefix
    if len(found) == 1:
        return found[0]
    if not found:
        fail(f"no {what} {prefix}")
    shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
    fail(f"{prefix} is ambiguous: it starts {what} ids {shown}; give more characters", 2)


#: how many candidates an id lookup asks for: enough to tell one from several, and list them
PREFIX_CANDIDATES = 6


def _cell(value: Any) -> str:
    """A value for people: no Python reprs (`{'status': ...}`, `True`), money to the cent."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        from finfocus.cli.vocab import cents

        # trailing zeros go ("5843.6700000000" is 5,843.67); real digits stay (a unit price of
        # 0.0000166667 is not money to round: money columns are rounded by their callers)
        if value == value.quantize(Decimal("0.01")):
            return cents(value)
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) if value else ""
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def render_table(  # noqa: C901 - one renderer for every column kind (money, share, bar, wrap), each a branch
    columns: list[Column],
    rows: Iterable[Iterable[Any]],
    *,
    title: str | None = None,
    wide: bool = False,
    whole: str | None = None,
) -> None:
    """A table that stays readable at 80 columns: see `Column`. `whole` names the command that
    shows a row's long text whole (e.g. `finfocus remediation show ID`), said under the table
    when some text had to be shortened."""
    from rich.cells import cell_len

    out = console
    body = [[_cell(v) for v in row] for row in rows]
    natural = [
        max(
            [
                cell_len(c.name),
                *(max((cell_len(x) for x in r[i].split("\n")), default=0) for r in body),
            ]
        )
        for i, c in enumerate(columns)
    ]
    keep = list(range(len(columns)))
    fixed_kinds = {"id", "date", "money", "number", "chart"}
    mins = {"key": 14, "text": 8}

    def floor(i: int) -> int:
        c = columns[i]
        return natural[i] if c.kind in fixed_kinds else min(natural[i], mins.get(c.kind, 8))

    def needed(idx: list[int]) -> int:
        return sum(floor(i) + 2 for i in idx)  # one space of padding either side, no borders

    hidden: list[str] = []
    shortened = False
    if not wide:
        for i in sorted((i for i in keep if columns[i].drop), key=lambda i: (-columns[i].drop, -i)):
            if needed(keep) <= out.width:
                break
            keep.remove(i)
            hidden.append(columns[i].name)
    if not wide and needed(keep) > out.width:  # then ids become unique prefixes
        for i in keep:
            if columns[i].prefix and body:
                short = unique_prefixes([r[i] for r in body])
                for r, p in zip(body, short):
                    r[i] = p
                natural[i] = max([cell_len(columns[i].name), *(cell_len(p) for p in short)])
                shortened = True
        if needed(keep) > out.width:  # still too wide: group values and text give way further
            mins = {"key": 8, "text": 4}
        # last resort, rather than let rich cut a date or an amount: columns other than the first
        # and the money leave whole, rightmost first (named under the table like the others)
        for i in [i for i in reversed(keep[1:]) if columns[i].kind != "money"]:
            if needed(keep) <= out.width:
                break
            keep.remove(i)
            hidden.insert(0, columns[i].name)
    # widths decided here, not by rich's proportional shrinking (which cut ids and money):
    # fixed columns get their natural width, the rest share what is left
    widths: dict[int, int] = {}
    if not wide:
        flex = [i for i in keep if columns[i].kind not in fixed_kinds]
        spare = out.width - needed(keep)
        for i in flex:
            widths[i] = floor(i)
        want = {
            i: max(0, min(natural[i], 60) - floor(i)) for i in flex
        }  # long prose does not eat all
        total_want = sum(want.values())
        if spare > 0 and total_want:
            for i in flex:
                widths[i] += min(want[i], spare * want[i] // total_want)
            left = spare - sum(widths[i] - floor(i) for i in flex)
            while left > 0 and any(
                widths[i] - floor(i) < want[i] for i in flex
            ):  # what rounding left over
                for i in flex:
                    if left > 0 and widths[i] - floor(i) < want[i]:
                        widths[i] += 1
                        left -= 1
    cut = (
        any(columns[i].kind == "text" and widths.get(i, natural[i]) < natural[i] for i in keep)
        if not wide
        else False
    )
    table = Table(
        title=title,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title_justify="left",
        caption_justify="left",
        caption=(
            "; ".join(
                filter(
                    None,
                    [
                        f"not shown for width: {', '.join(reversed(hidden))} (--wide shows them)"
                        if hidden
                        else "",
                        "ids shortened to unique prefixes, which every command accepts"
                        if shortened
                        else "",
                        f"text shortened: `{whole}` has it whole" if whole and cut else "",
                    ],
                )
            )
            or None
        ),
    )
    for i in keep:
        c = columns[i]
        if c.kind in fixed_kinds:
            table.add_column(
                c.name,
                justify="right" if c.kind in {"money", "number"} else "left",
                no_wrap=True,
                min_width=natural[i],
            )
        elif c.kind == "key":
            table.add_column(c.name, overflow="fold", width=widths.get(i))
        else:
            table.add_column(
                c.name,
                overflow="fold" if wide else "ellipsis",
                no_wrap=not wide,
                width=widths.get(i),
            )
    for r in body:
        table.add_row(*[r[i] for i in keep])
    if wide and needed(keep) > out.width:
        # --wide: every column whole even when they add up to more than the terminal (which wraps
        # the lines): rendered at the width they need, written uncropped
        from rich.segment import Segment, Segments

        for line in out.render_lines(table, out.options.update_width(needed(keep)), pad=False):
            out.print(Segments([*line, Segment.line()]), soft_wrap=True, end="")
    else:
        out.print(table)


def sparkline(values: list[Any]) -> str:
    """A one-line chart of a series."""
    nums = [Decimal(str(v)) for v in values]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    span = hi - lo
    return "".join(SPARK[0 if span == 0 else int((v - lo) / span * (len(SPARK) - 1))] for v in nums)


def render_detail(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    """A `show` command's view: one `key  value` line per field, long values folded."""
    from rich.table import Table as _Table

    table = _Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in pairs:
        table.add_row(key, _cell(value))
    console.print(table)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error for people on stderr and exit with `code` (1 failure, 2 usage)."""
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
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
