"""`finfocus budget set|list|delete`: budgets watched by the forecast service.

`set` and `delete` send a BudgetCommand on `budget-commands` (the forecast service owns the
budgets) and wait until `forecast.v_budgets` shows the change; `list` reads that view.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    WIDE_OPTION,
    OutputFormat,
    fail,
    print_json,
    print_ndjson,
    print_table,
    run,
)
from schemas.reads.forecast import budget_public, budget_rows

__all__ = ["budget_app", "budget_public", "register"]

budget_app = typer.Typer(
    help="Budgets: an amount per month or quarter over a scope, with alerts.", no_args_is_help=True
)


def _thresholds(items: list[str]) -> list[dict]:
    out = []
    for item in items:
        kind, sep, pct = item.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in ("actual", "forecast"):
            raise ValueError(f"--threshold {item!r}: expected actual:PERCENT or forecast:PERCENT")
        try:
            value = Decimal(pct.strip().rstrip("%"))
        except InvalidOperation as exc:
            raise ValueError(f"--threshold {item!r}: {pct!r} is not a number") from exc
        out.append({"kind": kind, "percent": value})
    return out


async def _send(command) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from finfocus.cli.publish import sign_as_cli
    from finfocus.settings import FinFocusSettings
    from schemas.budget import BUDGET_COMMANDS
    from schemas.topics import schema_headers

    settings = FinFocusSettings()
    value = command.model_dump_json().encode()
    # signed as the command line: the forecast service applies only signed budget commands
    # and audits the signer as the actor
    signature = sign_as_cli(settings, BUDGET_COMMANDS, value)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, enable_idempotence=False)
    try:
        await producer.start()
        headers = [(k, v.encode()) for k, v in schema_headers("BudgetCommand").items()]
        await producer.send_and_wait(
            BUDGET_COMMANDS, value, key=command.name.encode(), headers=[*headers, signature]
        )
    except KafkaError as exc:
        fail(f"cannot send the budget command to the broker at {settings.kafka}: {exc}")
    finally:
        await producer.stop()


async def _rows(name: str | None = None) -> list[dict]:
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings

    async with reader(FinFocusSettings().database) as conn:
        return await budget_rows(conn, name)


async def _send_and_wait(command, wait: float, done) -> bool:
    await _send(command)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        if done(await _rows(command.name)):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.3)


def _remote_change(api, method: str, name: str, body: dict | None, wait: float, done) -> bool:
    """Send a budget change to the API; True once `GET /api/v1/budgets` shows it (the API
    waits a few seconds itself: 200 applied, 202 accepted), polled up to `wait` seconds."""
    import time

    from finfocus.cli.remote import RemoteError, path

    try:
        status, _ = api.request(method, path("budgets", name), json=body)
    except RemoteError as exc:
        if exc.status == 404 and method == "DELETE":
            fail(f"no budget named {name!r}")
        api.fail(exc)
    if status == 200 or wait <= 0:
        return status == 200
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        rows = [b for b in api.get("/api/v1/budgets")["budgets"] if b["name"] == name]
        if done(rows):
            return True
        time.sleep(0.3)
    return False


@budget_app.command("set")
def set_budget(
    name: str = typer.Argument(..., help="budget name (letters, digits, . _ -)"),
    amount: str = typer.Option(..., "--amount", "-a", help="amount per period, e.g. 1500.00"),
    currency: str = typer.Option("USD", "--currency", "-c", help="ISO 4217 currency of the amount"),
    period: str = typer.Option("monthly", "--period", "-p", help="monthly or quarterly"),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="scope: KEY=VALUE or tag:KEY=VALUE, repeatable"
    ),
    thresholds: list[str] = typer.Option(
        [],
        "--threshold",
        "-t",
        help="actual:PERCENT or forecast:PERCENT, repeatable (default actual:80, actual:100, forecast:100)",
    ),
    wait: float = typer.Option(
        30.0, "--wait", help="seconds to wait for the forecast service (0: do not wait)"
    ),
) -> None:
    """Create or replace a budget; alerts go to `anomalies` with detector=budget."""
    from pydantic import ValidationError

    from schemas.budget import BudgetCommandV1

    try:
        scope = {}
        for item in filters:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--filter {item!r}: expected KEY=VALUE")
            scope[key.strip()] = value
        command = BudgetCommandV1(
            action="set",
            name=name,
            amount=amount,
            currency=currency.upper(),
            period=period.lower(),
            scope=scope,
            thresholds=_thresholds(thresholds)
            or [
                {"kind": "actual", "percent": 80},
                {"kind": "actual", "percent": 100},
                {"kind": "forecast", "percent": 100},
            ],
            issued_at=datetime.now(UTC),
        )
    except (ValueError, ValidationError) as exc:
        fail(_reason(exc), 2)

    def done(rows: list[dict]) -> bool:
        return (
            bool(rows)
            and Decimal(str(rows[0]["amount"])) == command.amount
            and rows[0]["currency"] == command.currency
        )

    from finfocus.cli.remote import remote

    api = remote()
    if api is not None:  # a remote deployment: PUT /api/v1/budgets/{name} (admin)
        body = command.model_dump(
            mode="json", include={"amount", "currency", "period", "scope", "thresholds"}
        )
        applied = _remote_change(api, "PUT", name, body, wait, done)
        if wait <= 0:
            typer.echo(f"budget {name} sent")
        elif applied:
            typer.echo(
                f"budget {name} set: {command.amount} {command.currency} {command.period.value}"
            )
        else:
            fail(
                f"budget {name} was sent but the forecast service has not stored it within {wait:.0f}s"
            )
        return

    if wait <= 0:
        run(_send(command))
        typer.echo(f"budget {name} sent")
    elif run(_send_and_wait(command, wait, done)):
        typer.echo(f"budget {name} set: {command.amount} {command.currency} {command.period.value}")
    else:
        fail(
            f"budget {name} was sent but the forecast service has not stored it within {wait:.0f}s"
        )


@budget_app.command("delete")
def delete_budget(
    name: str = typer.Argument(..., help="budget name"),
    wait: float = typer.Option(
        30.0, "--wait", help="seconds to wait for the forecast service (0: do not wait)"
    ),
) -> None:
    """Delete a budget (its past alerts stay on record)."""
    from finfocus.cli.remote import remote
    from schemas.budget import BudgetCommandV1

    api = remote()
    if api is not None:  # a remote deployment: DELETE /api/v1/budgets/{name} (admin)
        if not _remote_change(api, "DELETE", name, None, wait, lambda rows: not rows) and wait > 0:
            fail(f"delete of {name} was sent but not applied within {wait:.0f}s")
        typer.echo(f"budget {name} deleted")
        return
    if not run(_rows(name)):
        fail(f"no budget named {name!r}")
    command = BudgetCommandV1(action="delete", name=name, issued_at=datetime.now(UTC))
    if wait <= 0:
        run(_send(command))
    elif not run(_send_and_wait(command, wait, lambda rows: not rows)):
        fail(f"delete of {name} was sent but not applied within {wait:.0f}s")
    typer.echo(f"budget {name} deleted")


@budget_app.command("list")
def list_budgets(output: OutputFormat = OUTPUT_OPTION, wide: bool = WIDE_OPTION) -> None:
    """Budgets with this period's actual spend and the projection to its end."""
    from finfocus.cli.remote import remote

    api = remote()
    if api is not None:  # a remote deployment: GET /api/v1/budgets answers the same document
        budgets = api.get("/api/v1/budgets")["budgets"]
    else:
        try:
            budgets = [budget_public(r) for r in run(_rows())]
        except Exception as exc:  # noqa: BLE001 - a database without the forecast schema
            from services.forecast.cli.forecast import _not_ready

            fail(_not_ready(exc).replace("forecasts", "budgets", 1))
    if output == OutputFormat.JSON:
        print_json({"budgets": budgets})
    elif output == OutputFormat.NDJSON:
        print_ndjson(budgets)
    else:
        print_table(
            ["name", "scope", "period", "amount", "actual", "projected", "used", "alerts"],
            [
                (
                    b["name"],
                    ", ".join(f"{k}={v}" for k, v in b["scope"].items()) or "all",
                    f"{b['period']} from {b['period_start'] or '-'}",
                    f"{_cents(b['amount'])} {b['currency']}",
                    _cents(b["actual_to_date"]),
                    f"{_cents(b['projected'])} ({_cents(b['projected_lo_95'])}-{_cents(b['projected_hi_95'])})"
                    if b["projected"] is not None
                    else "",
                    "" if b["projected_pct"] is None else f"{b['projected_pct']}%",
                    b["alerts_this_period"],
                )
                for b in budgets
            ],
            title="Budgets: projected = actual to date + forecast to the period's end (95 % range)",
            wide=wide,
            drop={"alerts": 4, "period": 3, "actual": 2, "scope": 1},
        )


async def _alerts(name: str | None) -> list[dict]:
    from finfocus.db import reader
    from finfocus.settings import FinFocusSettings

    async with reader(FinFocusSettings().database) as conn:
        rows = await conn.fetch(
            "SELECT a.alert_id, a.name, a.period_start, a.period_end, a.kind, a.percent, a.limit_amount, "
            "a.spend, a.raised_at, b.currency FROM forecast.v_budget_alerts a "
            "LEFT JOIN forecast.v_budgets b USING (name) "
            "WHERE $1::text IS NULL OR a.name = $1 ORDER BY a.raised_at DESC, a.alert_id",
            name,
        )
    return [dict(r) for r in rows]


@budget_app.command("alerts")
def list_alerts(
    name: str = typer.Argument(None, help="Only this budget's alerts"),
    output: OutputFormat = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
) -> None:
    """Alerts budgets have raised (actual or projected spend past a threshold), newest first."""
    try:
        alerts = run(_alerts(name))
    except Exception as exc:  # noqa: BLE001 - a database without the forecast schema
        from services.forecast.cli.forecast import _not_ready

        fail(_not_ready(exc).replace("forecasts", "budget alerts", 1))
    if output == OutputFormat.JSON:
        print_json({"alerts": alerts})
    elif output == OutputFormat.NDJSON:
        print_ndjson(alerts)
    else:
        from finfocus.cli.output import Column, render_table
        from finfocus.cli.vocab import plural

        render_table(
            [
                Column("raised", kind="id"),
                Column("budget", kind="key"),
                Column("kind", kind="id"),
                Column("threshold", kind="number"),
                Column("spend", kind="money"),
                Column("limit", kind="money"),
                Column("period", kind="date", drop=1),
                Column("id", kind="id", drop=2),
            ],
            [
                (
                    a["raised_at"],
                    a["name"],
                    a["kind"],
                    f"{a['percent']}%",
                    f"{_cents(a['spend'])} {a['currency'] or ''}",
                    _cents(a["limit_amount"]),
                    f"{a['period_start']} to {a['period_end']}",
                    a["alert_id"],
                )
                for a in alerts
            ],
            title=plural(len(alerts), "budget alert"),
            wide=wide,
        )


def _cents(value) -> str:
    from finfocus.cli.vocab import cents

    return cents(value)


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'budget'}: {e['msg']}" for e in errors()
        )
    return str(exc)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `finfocus` app."""
    app.add_typer(budget_app, name="budget")
