"""Remediation playbooks: listed for viewers from `remediation.v_playbooks` (what the
remediation service loaded, with the effective `enabled`); enabled and disabled by admins as
PlaybookCommand v1 events on `playbook-commands` signed `api` (the remediation service
applies the switch and audits it in `remediation.v_playbook_audit`).

A switch answers 200 once the audit shows it (`applied` or `unchanged`), 422 with the
service's reason when it refused it (a playbook it has not loaded), 202 when it has not been
applied yet within the decision wait.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.playbooks import PLAYBOOK_COMMANDS, PlaybookAction, PlaybookCommandV1
from services.api.auth import Admin, Viewer
from services.api.decisions import publish, record, wait_until
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse

router = APIRouter(
    prefix="/api/v1",
    default_response_class=MoneyJSONResponse,
    responses=COMMON_RESPONSES,
    tags=["playbooks"],
)

Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
COLUMNS = (
    "name, mode, trigger, actions, file_enabled, enabled, switched, reason, updated_at, updated_by"
)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000, description="Why, recorded in the audit")


async def playbook_rows(ctx, name: str | None = None) -> list[dict]:
    async with ctx.reader() as conn:  # 503 before remediation made its views
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM remediation.v_playbooks "
            "WHERE $1::text IS NULL OR name = $1 ORDER BY name",
            name,
        )
    return [dict(r) | {"actions": list(r["actions"])} for r in rows]


async def _audit(ctx, command_id: str | None = None, limit: int = 100) -> list[dict]:
    async with ctx.reader() as conn:
        rows = await conn.fetch(
            "SELECT command_id, at, name, action, outcome, detail, reason, actor, issued_at "
            "FROM remediation.v_playbook_audit WHERE $1::text IS NULL OR command_id = $1 "
            "ORDER BY at DESC, issued_at DESC NULLS LAST LIMIT $2",
            command_id,
            limit,
        )
    return [dict(r) for r in rows]


@router.get("/playbooks", summary="The playbooks the remediation service loaded, and their state")
async def list_playbooks(request: Request, who: Viewer) -> dict:
    return {"playbooks": await playbook_rows(request.app.state.ctx)}


@router.get("/playbooks/audit", summary="Who switched which playbook, newest first")
async def playbook_audit(
    request: Request, who: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict:
    return {"audit": await _audit(request.app.state.ctx, limit=limit)}


async def _switch(
    request: Request, who, name: str, action: PlaybookAction, body: Reason | None
) -> JSONResponse:
    ctx = request.app.state.ctx
    command = PlaybookCommandV1(
        command_id=f"dec-{uuid.uuid4().hex}",
        action=action,
        name=name,
        reason=body.reason if body else None,
        actor=who.actor,
        issued_at=datetime.now(UTC),
    )
    await publish(ctx, PLAYBOOK_COMMANDS, name, command, "PlaybookCommand")
    await record(ctx, command.command_id, "playbook", name, action.value, who.actor, command.reason)

    async def audited():
        return await _audit(ctx, command.command_id, 1)

    rows = await wait_until(ctx, audited)
    if not isinstance(rows, list) or not rows:
        return MoneyJSONResponse(
            {"decision_id": command.command_id, "status": "accepted"}, status_code=202
        )
    row = rows[0]
    if row["outcome"] == "refused":
        raise HTTPException(422, f"the remediation service refused it: {row['detail']}")
    shown = await playbook_rows(ctx, name)
    return MoneyJSONResponse(
        {
            "decision_id": command.command_id,
            "status": "applied",
            "outcome": row["outcome"],
            "playbook": shown[0] if shown else None,
        }
    )


SWITCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "sent, not applied yet (the remediation service will apply it)"},
    422: {"description": "the body does not validate, or the remediation service refused it"},
}


@router.post(
    "/playbooks/{name}/enable", summary="Enable a playbook (admin)", responses=SWITCH_RESPONSES
)
async def enable_playbook(
    request: Request, who: Admin, name: Name, body: Reason | None = None
) -> JSONResponse:
    return await _switch(request, who, name, PlaybookAction.ENABLE, body)


@router.post(
    "/playbooks/{name}/disable", summary="Disable a playbook (admin)", responses=SWITCH_RESPONSES
)
async def disable_playbook(
    request: Request, who: Admin, name: Name, body: Reason | None = None
) -> JSONResponse:
    return await _switch(request, who, name, PlaybookAction.DISABLE, body)
