"""Read endpoints: the same documents as the CLI's `--output json`, from the services' views.

The query building is the CLI's too (schemas/reads/: the read side of each service's
contract, pure functions over whitelisted names with bound values), so both give the same
figures for the same query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from schemas.reads import pricing as costq
from schemas.reads import remediation as remediation_cli
from schemas.reads.ingest import import_jobs
from services.api import costs as costs_query
from services.api.auth import Viewer
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse, bad_request

router = APIRouter(
    prefix="/api/v1", default_response_class=MoneyJSONResponse, responses=COMMON_RESPONSES
)

STATUSES = ("pending-approval", "approved", "executed", "dry-run", "rejected", "expired", "failed")
SEVERITIES = ("low", "medium", "high", "critical")


def window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    try:
        parsed = costq.parse_when(start, "from"), costq.parse_when(end, "to")
    except costq.UsageError as exc:
        raise bad_request(str(exc)) from None
    if parsed[0] and parsed[1] and parsed[1] <= parsed[0]:
        raise bad_request("to must be after from")
    return parsed


@router.get(
    "/costs",
    tags=["costs"],
    summary="Actual cost of stored lines (= `finfocus cost actual --output json`)",
)
async def costs(
    request: Request,
    who: Viewer,
    start: Annotated[
        str | None, Query(alias="from", description="YYYY-MM-DD or RFC 3339, inclusive")
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="YYYY-MM-DD or RFC 3339, exclusive")
    ] = None,
    group_by: Annotated[
        str | None,
        Query(
            description="comma-separated: provider, service, account, region, "
            "resource, type, sku, category, daily, monthly, tag:KEY"
        ),
    ] = None,
    filter: Annotated[
        list[str] | None, Query(description="KEY=VALUE, KEY!=VALUE or tag:KEY=VALUE; repeatable")
    ] = None,  # noqa: A002
    metric: Annotated[str, Query(description="billed, effective, list or contracted")] = "billed",
) -> dict:
    try:
        groups = costq.parse_group_by(group_by)
        filters = [costq.parse_filter(f) for f in filter or []]
    except costq.UsageError as exc:
        raise bad_request(str(exc)) from None
    if metric not in costq.METRICS:
        raise bad_request(f"unknown metric {metric!r}; use one of {', '.join(costq.METRICS)}")
    start_at, end_at = window(start, end)
    return await costs_query.document(
        request.app.state.ctx, start_at, end_at, groups, filters, metric
    )


@router.get(
    "/anomalies",
    tags=["anomalies"],
    summary="Anomalies (= `finfocus anomalies list --output json`)",
)
async def anomalies(
    request: Request,
    who: Viewer,
    since: Annotated[
        str | None, Query(description="YYYY-MM-DD or RFC 3339: windows ending after it")
    ] = None,
    severity: Annotated[
        list[str] | None, Query(description="low, medium, high or critical; repeatable")
    ] = None,
    status: Annotated[
        list[str] | None, Query(description="open, acknowledged, resolved...; repeatable")
    ] = None,
) -> dict:
    from schemas.reads.anomaly import list_query

    since_at, _ = window(since, None)
    bad = [s for s in severity or [] if s not in SEVERITIES]
    if bad:
        raise bad_request(f"unknown severity {bad[0]!r}; use {', '.join(SEVERITIES)}")
    sql, params = list_query(since_at, list(severity or []), list(status or []))
    async with request.app.state.ctx.reader() as conn:
        rows = [r["record"] for r in await conn.fetch(sql, *params)]
    return {"anomalies": rows}


@router.get(
    "/forecasts",
    tags=["forecasts"],
    summary="Daily forecasts (= `finfocus forecast show --output json`)",
)
async def forecasts(
    request: Request,
    who: Viewer,
    group_by: Annotated[
        str,
        Query(
            description="comma-separated: provider, service, account, region, resource, "
            "type, tag:KEY ('' for the total)"
        ),
    ] = "provider,account,service",
    filter: Annotated[list[str] | None, Query(description="KEY=VALUE; repeatable")] = None,  # noqa: A002
    horizon: Annotated[
        int,
        Query(
            ge=1,
            description="days after trained_through; beyond the stored days is refused (400) "
            "with the limit, as `forecast show --horizon` refuses it",
        ),
    ] = 30,
) -> dict:
    from schemas.reads import forecast as fq

    try:
        keys = fq.parse_group_by(group_by)
        wanted = fq.parse_filters(list(filter or []))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    wanted_dims = set(keys) | set(wanted)
    async with request.app.state.ctx.reader() as conn:
        available = [
            r["dims"] for r in await conn.fetch("SELECT DISTINCT dims FROM forecast.v_forecasts")
        ]
        exact = fq.dims_id(wanted_dims)
        chosen = (
            exact
            if exact in available
            else min(
                [a for a in available if wanted_dims <= set(filter_(a))],
                key=lambda a: (a.count(",") + 1, a),
                default=None,
            )
        )
        if chosen is None:
            if available:
                raise HTTPException(404, f"no forecasts by {exact or '(total)'}")
            return {"forecasts": []}
        rows = await conn.fetch(
            'SELECT series_key, "group", currency, model, trained_through, day, mean, lo_80, hi_80, '
            "lo_95, hi_95 FROM forecast.v_forecasts WHERE dims = $1 ORDER BY series_key, day",
            chosen,
        )
    data = [dict(r) for r in rows]
    try:  # the CLI's check: never silently fewer days than asked
        fq.check_horizon(data, horizon)
    except fq.HorizonError as exc:
        raise bad_request(str(exc).replace("--horizon", "horizon")) from None
    return {"forecasts": fq.public(fq.combine(keys, wanted, data, horizon))}


def filter_(dims: str) -> list[str]:
    return [d for d in dims.split(",") if d]


async def budget_rows(ctx, name: str | None = None) -> list[dict]:
    async with ctx.reader() as conn:
        rows = await conn.fetch(
            "SELECT * FROM forecast.v_budgets WHERE $1::text IS NULL OR name = $1 ORDER BY name",
            name,
        )
    from schemas.reads.forecast import budget_public

    return [budget_public(dict(r)) for r in rows]


@router.get(
    "/budgets",
    tags=["budgets"],
    summary="Budgets with actual and projected spend (= `finfocus budget list`)",
)
async def budgets(request: Request, who: Viewer) -> dict:
    return {"budgets": await budget_rows(request.app.state.ctx)}


@router.get(
    "/recommendations",
    tags=["recommendations"],
    summary="Savings recommendations (= `finfocus recommendations list --output json`)",
    response_model=dict,
)
async def recommendations(
    request: Request,
    who: Viewer,
    state: Annotated[str, Query(description="open, dismissed, snoozed, resolved or all")] = "open",
    type: Annotated[str | None, Query(description="only this type, e.g. idle-address")] = None,  # noqa: A002
) -> MoneyJSONResponse:
    async with request.app.state.ctx.reader() as conn:
        rows = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM remediation.v_recommendations WHERE ($1::text IS NULL OR state = $1) "
                "AND ($2::text IS NULL OR type = $2) ORDER BY estimated_monthly_savings DESC, recommendation_id",
                None if state == "all" else state,
                type,
            )
        ]
    # encoded as the CLI encodes (timestamps `+00:00`, money as `format(d, "f")`), not by pydantic
    return MoneyJSONResponse(
        {"recommendations": rows, "totals": remediation_cli.recommendation_totals(rows)}
    )


SAVINGS_KEYS = remediation_cli.SAVINGS_KEYS
#: the CLI's grouping (snake_case keys, the camelCase ones beside them for one release)
savings_groups = remediation_cli.savings_groups


async def savings_rows(ctx) -> list[dict]:
    async with ctx.reader() as conn:
        return [
            dict(r)
            for r in await conn.fetch("SELECT * FROM remediation.v_savings ORDER BY executed_at")
        ]


@router.get(
    "/savings",
    tags=["savings"],
    summary="Realised against expected savings (= `finfocus savings report`)",
    response_model=dict,
)
async def savings(
    request: Request,
    who: Viewer,
    by: Annotated[
        str, Query(description="comma-separated: playbook, account, action")
    ] = "playbook,account,action",
) -> MoneyJSONResponse:
    keys = [k.strip() for k in by.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SAVINGS_KEYS]
    if unknown:
        raise bad_request(f"unknown by key(s) {unknown}; use playbook, account, action")
    rows = await savings_rows(request.app.state.ctx)
    return MoneyJSONResponse(  # the CLI's encoding, as for recommendations
        {
            "groups": savings_groups(rows, keys),
            "actions": rows,
            "totals": remediation_cli.savings_totals(rows),
        }
    )


@router.get(
    "/ingest/jobs",
    tags=["ingest"],
    summary="Recent import jobs, newest first (= `finfocus ingest jobs`)",
)
async def ingest_jobs(
    request: Request, who: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> dict:
    async with request.app.state.ctx.reader() as conn:
        return {"jobs": await import_jobs(conn, limit)}


@router.get(
    "/remediation/commands",
    tags=["remediation"],
    summary="Remediation commands with status and result (= `finfocus remediation list`)",
)
async def remediation_commands(
    request: Request,
    who: Viewer,
    status: Annotated[str | None, Query(description=", ".join(STATUSES))] = None,
) -> dict:
    if status is not None and status not in STATUSES:
        raise bad_request(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    async with request.app.state.ctx.reader() as conn:
        rows = await conn.fetch(
            "SELECT command, status, result FROM remediation.v_actions "
            "WHERE ($1::text IS NULL OR status = $1) ORDER BY issued_at, command_id",
            status,
        )
    return {
        "commands": [{**r["command"], "status": r["status"], "result": r["result"]} for r in rows]
    }


@router.get(
    "/remediation/commands/{command_id}/audit",
    tags=["remediation"],
    summary="The audit of one command (= `finfocus remediation audit ID`)",
)
async def remediation_audit(request: Request, who: Viewer, command_id: str) -> dict:
    async with request.app.state.ctx.reader() as conn:
        rows = await conn.fetch(
            "SELECT * FROM remediation.v_audit WHERE command_id = $1 ORDER BY audit_id", command_id
        )
    return {"audit": [dict(r) for r in rows]}


@router.get(
    "/plugins/health", tags=["plugins"], summary="What pricing last recorded about its plugins"
)
async def plugins_health(request: Request, who: Viewer) -> dict:
    async with request.app.state.ctx.reader() as conn:
        rows = await conn.fetch("SELECT * FROM pricing.v_plugin_health ORDER BY plugin")
    return {"plugins": [dict(r) for r in rows]}
