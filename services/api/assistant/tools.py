"""The documents the MCP tools return: the same JSON as the matching `--output json` CLI
command, built by the CLI's own query helpers in schemas/reads/ (so the two cannot drift)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson


def plain(doc: Any) -> Any:
    """Decimals as strings and dates as ISO text, as the CLI prints them."""
    from finfocus.cli.output import to_json

    return orjson.loads(to_json(doc))


def _database() -> str:
    from finfocus.settings import FinFocusSettings

    return FinFocusSettings().database


async def cost_actual(
    start: str | None,
    end: str | None,
    group_by: str | None,
    filters: list[str],
    metric: str = "billed",
) -> dict:
    from finfocus.db import reader
    from schemas.reads import pricing as cost

    groups = cost.parse_group_by(group_by)
    parsed = [cost.parse_filter(f) for f in filters]
    window = cost.parse_when(start, "from"), cost.parse_when(end, "to")
    if metric not in cost.METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(cost.METRICS)}")
    (rsql, rparams), (tsql, tparams) = cost.actual_queries(groups, metric, *window, parsed)
    async with reader(_database()) as conn:
        totals = [dict(r) for r in await conn.fetch(tsql, *tparams)]
        rows = await conn.fetch(rsql, *rparams)
    return plain(
        {
            "summary": cost.summary_of(totals, *window, metric, groups),
            "results": [cost.result_of(r, groups) for r in rows],
        }
    )


async def cost_projected(
    plan: dict | str, currency: str = "USD", region: str | None = None, plugins: bool = False
) -> dict:
    """`finfocus cost projected` itself, in a child process: pricing a plan is the pricing
    service's code, which the api service does not import."""
    import asyncio
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="finfocus-plan-") as tmp:
        if isinstance(plan, str):
            path = Path(plan)
            if not path.is_file():  # noqa: ASYNC240 - one stat of a local file
                raise ValueError(f"{plan}: no such Pulumi plan file")
        else:
            path = Path(tmp) / "plan.json"
            path.write_bytes(orjson.dumps(plan))
        args = [
            "-m",
            "finfocus.cli",
            "cost",
            "projected",
            "--pulumi-json",
            str(path),
            "--output",
            "json",
            "--currency",
            currency,
            "--plugins" if plugins else "--no-plugins",
        ]
        if region:
            args += ["--region", region]
        child = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await child.communicate()
    if child.returncode != 0:
        raise ValueError(
            (err.decode(errors="replace").strip().splitlines() or ["cost projected failed"])[-1]
        )
    return orjson.loads(out)


async def anomalies(since: str | None, severity: list[str], status: list[str]) -> dict:
    from finfocus.db import reader
    from schemas.reads.anomaly import anomalies as select
    from schemas.reads.anomaly import expand_severities, parse_since

    async with reader(_database()) as conn:
        rows = await select(conn, parse_since(since), expand_severities(severity), status)
    return plain({"anomalies": rows})


async def forecast(group_by: str, filters: list[str], horizon: int) -> dict:
    from finfocus.db import reader
    from schemas.reads.forecast import forecasts, parse_filters, parse_group_by, public

    keys, wanted = parse_group_by(group_by), parse_filters(filters)
    async with reader(_database()) as conn:
        return plain({"forecasts": public(await forecasts(conn, keys, wanted, horizon))})


async def budgets() -> dict:
    from finfocus.db import reader
    from schemas.reads.forecast import budget_public, budget_rows

    async with reader(_database()) as conn:
        return plain({"budgets": [budget_public(r) for r in await budget_rows(conn)]})


async def recommendations(state: str = "open", rec_type: str | None = None) -> dict:
    from decimal import Decimal

    from finfocus.db import reader
    from schemas.reads.remediation import recommendations as select

    async with reader(_database()) as conn:
        rows = await select(conn, None if state == "all" else state, rec_type)
    totals: dict[str, Decimal] = {}
    for r in rows:
        totals[r["currency"]] = (
            totals.get(r["currency"], Decimal(0)) + r["estimated_monthly_savings"]
        )
    return plain(
        {
            "recommendations": rows,
            "totals": [
                {"currency": c, "estimated_monthly_savings": t, "estimatedMonthlySavings": t}
                for c, t in sorted(totals.items())
            ],
        }
    )


async def savings(by: str = "playbook,account,action") -> dict:
    from finfocus.db import reader
    from schemas.reads.remediation import savings as select
    from schemas.reads.remediation import savings_groups

    keys = [k.strip() for k in by.split(",") if k.strip()]
    async with reader(_database()) as conn:
        rows = await select(conn)
    return plain(
        {
            "groups": savings_groups(rows, keys),
            "actions": rows,
            "totals": [
                {
                    "currency": g["currency"],
                    "expected_monthly": g["expected_monthly"],
                    "realised_monthly": g["realised_monthly"],
                    "expectedMonthly": g["expected_monthly"],
                    "realisedMonthly": g["realised_monthly"],
                }
                for g in savings_groups(rows, [])
            ],
        }
    )


async def ask(question: str, engine: str | None = None) -> dict:
    from finfocus.db import reader
    from services.api.assistant import answer, configured_engine

    async with reader(_database()) as conn:
        return await answer(
            question, conn, today=datetime.now(UTC).date(), engine=engine or configured_engine()
        )
