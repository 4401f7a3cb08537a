"""Anomaly monitors: read by viewers from `anomaly.v_monitors`; added, replaced and removed by
admins as MonitorCommand v1 events on `monitor-commands` signed `api` (the anomaly service
owns monitors, checks them against its detectors and audits each command in
`anomaly.v_monitor_audit`).

A change answers 200 once the audit shows it applied (or unchanged), 422 with the anomaly
service's reason when it refused it (an unknown dimension, detector or parameter; removing
the last monitor), 202 when it has not been applied yet within the decision wait.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from schemas.monitors import (
    MONITOR_COMMANDS,
    MonitorAction,
    MonitorCommandV1,
    MonitorDefinitionV1,
)
from services.api.auth import Admin, Viewer
from services.api.decisions import publish, record, wait_until
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse

router = APIRouter(
    prefix="/api/v1",
    default_response_class=MoneyJSONResponse,
    responses=COMMON_RESPONSES,
    tags=["monitors"],
)

Name = Annotated[str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "sent, not applied yet (the anomaly service will apply it)"},
    422: {"description": "the body does not validate, or the anomaly service refused it"},
}


def _spec(value: Any) -> dict:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


async def monitor_rows(ctx, name: str | None = None) -> list[dict]:
    async with ctx.reader() as conn:  # 503 before anomaly made its views
        rows = await conn.fetch(
            "SELECT name, spec, version, updated_at, updated_by FROM anomaly.v_monitors "
            "WHERE $1::text IS NULL OR name = $1 ORDER BY name",
            name,
        )
    return [
        {
            "name": r["name"],
            **_spec(r["spec"]),
            "version": r["version"],
            "updated_at": r["updated_at"],
            "updated_by": r["updated_by"],
        }
        for r in rows
    ]


async def _audit(ctx, command_id: str | None = None, limit: int = 100) -> list[dict]:
    async with ctx.reader() as conn:  # 503 before anomaly made its views
        rows = await conn.fetch(
            "SELECT command_id, at, name, action, spec, outcome, detail, actor, issued_at "
            "FROM anomaly.v_monitor_audit WHERE $1::text IS NULL OR command_id = $1 "
            "ORDER BY at DESC, issued_at DESC NULLS LAST LIMIT $2",
            command_id,
            limit,
        )
    return [{**dict(r), "spec": None if r["spec"] is None else _spec(r["spec"])} for r in rows]


@router.get("/monitors", summary="The anomaly monitors in effect")
async def list_monitors(request: Request, who: Viewer) -> dict:
    return {"monitors": await monitor_rows(request.app.state.ctx)}


@router.get("/monitors/audit", summary="Who changed which monitor, newest first")
async def monitor_audit(
    request: Request,
    who: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    return {"audit": await _audit(request.app.state.ctx, limit=limit)}


@router.get("/monitors/{name}", summary="One monitor")
async def get_monitor(request: Request, who: Viewer, name: Name) -> dict:
    rows = await monitor_rows(request.app.state.ctx, name)
    if not rows:
        raise HTTPException(404, f"no monitor {name}")
    return rows[0]


async def _send(request: Request, who, command: MonitorCommandV1) -> JSONResponse:
    ctx = request.app.state.ctx
    await publish(ctx, MONITOR_COMMANDS, command.name, command, "MonitorCommand")
    await record(
        ctx, command.command_id, "monitor", command.name, command.action.value, who.actor, None
    )

    async def audited():
        return await _audit(ctx, command.command_id, 1)

    rows = await wait_until(ctx, audited)
    if not isinstance(rows, list) or not rows:
        return MoneyJSONResponse(
            {"decision_id": command.command_id, "status": "accepted"}, status_code=202
        )
    row = rows[0]
    if row["outcome"] == "refused":
        raise HTTPException(422, f"the anomaly service refused it: {row['detail']}")
    monitor = await monitor_rows(ctx, command.name)
    return MoneyJSONResponse(
        {
            "decision_id": command.command_id,
            "status": "applied",
            "outcome": row["outcome"],
            "monitor": monitor[0] if monitor else None,
        }
    )


def _command(who, name: str, action: MonitorAction, body: MonitorDefinitionV1 | None):
    return MonitorCommandV1(
        command_id=f"dec-{uuid.uuid4().hex}",
        action=action,
        name=name,
        monitor=body,
        actor=who.actor,
        issued_at=datetime.now(UTC),
    )


@router.put(
    "/monitors/{name}",
    summary="Add or replace a monitor (admin)",
    responses=CHANGE_RESPONSES,
)
async def put_monitor(
    request: Request, who: Admin, name: Name, body: MonitorDefinitionV1
) -> JSONResponse:
    if not body.dimensions and not body.filters:
        raise HTTPException(422, "give dimensions, filters or both")
    return await _send(request, who, _command(who, name, MonitorAction.SET, body))


@router.delete(
    "/monitors/{name}",
    summary="Remove a monitor (admin)",
    responses={**CHANGE_RESPONSES, 404: {"description": "no such monitor"}},
)
async def delete_monitor(request: Request, who: Admin, name: Name) -> JSONResponse:
    if not await monitor_rows(request.app.state.ctx, name):
        raise HTTPException(404, f"no monitor {name}")
    return await _send(request, who, _command(who, name, MonitorAction.REMOVE, None))
