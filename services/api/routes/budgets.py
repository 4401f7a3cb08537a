"""Budgets: read by viewers, created, replaced and deleted by admins as BudgetCommand v1 events
on `budget-commands` signed `api` (the forecast service owns budgets)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.budget import BUDGET_COMMANDS, BudgetCommandV1, BudgetPeriod, BudgetThresholdV1
from services.api.auth import Admin, Viewer
from services.api.decisions import new_decision_id, publish, record, wait_until
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse
from services.api.routes.reads import budget_rows

router = APIRouter(
    prefix="/api/v1",
    default_response_class=MoneyJSONResponse,
    responses=COMMON_RESPONSES,
    tags=["budgets"],
)

Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class BudgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=30, decimal_places=10, description="Amount per period")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217")
    period: BudgetPeriod = BudgetPeriod.MONTHLY
    scope: dict[str, str] = Field(
        default_factory=dict,
        description="provider, account, service, region, resource, type or tag:KEY -> value",
    )
    thresholds: list[BudgetThresholdV1] = Field(default_factory=list)


@router.get("/budgets/{name}", summary="One budget")
async def get_budget(request: Request, who: Viewer, name: Name) -> dict:
    rows = await budget_rows(request.app.state.ctx, name)
    if not rows:
        raise HTTPException(404, f"no budget {name}")
    return rows[0]


async def _send(request: Request, who, command: BudgetCommandV1, done) -> JSONResponse:
    ctx = request.app.state.ctx
    decision_id = new_decision_id()
    await publish(ctx, BUDGET_COMMANDS, command.name, command, "BudgetCommand")
    await record(ctx, decision_id, "budget", command.name, command.action, who.actor, None)

    async def shown():
        return done(await budget_rows(ctx, command.name))

    applied = await wait_until(ctx, shown)
    return MoneyJSONResponse(
        {"decision_id": decision_id, "status": "applied" if applied else "accepted"},
        status_code=200 if applied else 202,
    )


@router.put(
    "/budgets/{name}",
    summary="Create or replace a budget (admin)",
    responses={202: {"description": "sent, not applied yet"}},
)
async def put_budget(request: Request, who: Admin, name: Name, body: BudgetBody) -> JSONResponse:
    try:
        command = BudgetCommandV1(
            action="set",
            name=name,
            amount=body.amount,
            currency=body.currency.upper(),
            period=body.period,
            scope=body.scope,
            thresholds=body.thresholds,
            issued_at=datetime.now(UTC),
            actor=who.actor,
        )
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None

    def done(rows):
        return (
            bool(rows)
            and rows[0]["amount"] == command.amount
            and rows[0]["currency"] == command.currency
        )

    return await _send(request, who, command, done)


@router.delete(
    "/budgets/{name}",
    summary="Delete a budget (admin)",
    responses={
        202: {"description": "sent, not applied yet"},
        404: {"description": "no such budget"},
    },
)
async def delete_budget(request: Request, who: Admin, name: Name) -> JSONResponse:
    if not await budget_rows(request.app.state.ctx, name):
        raise HTTPException(404, f"no budget {name}")
    command = BudgetCommandV1(
        action="delete", name=name, issued_at=datetime.now(UTC), actor=who.actor
    )
    return await _send(request, who, command, lambda rows: not rows)
