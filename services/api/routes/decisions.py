"""Decisions (approver and above): approve, reject and undo remediation commands, feedback on
anomalies, dismiss and snooze recommendations. Each travels as a signed event to the service
that applies it (see services/api/decisions.py): 200 once its view shows the decision (within
5 s), else 202 with the decision id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.anomaly import AnomalyFeedbackV1
from schemas.decisions import (
    RECOMMENDATION_DECISIONS,
    REMEDIATION_DECISIONS,
    RecommendationDecisionV1,
    RemediationDecisionV1,
)
from schemas.topics import Topics
from services.api.auth import Approver
from services.api.decisions import new_decision_id, publish, record, wait_until
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse

router = APIRouter(
    prefix="/api/v1", default_response_class=MoneyJSONResponse, responses=COMMON_RESPONSES
)

Id = Annotated[str, Path(min_length=1, max_length=200)]


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000, description="Why, recorded in the audit")


class Decided(BaseModel):
    decision_id: str = Field(description="Id of the published decision")
    status: str = Field(
        description="applied (the view shows it) or accepted (published, not yet applied)"
    )
    command: dict | None = None


def _answer(decision_id: str, applied: object | None, **extra) -> JSONResponse:
    body = {"decision_id": decision_id, "status": "applied" if applied else "accepted", **extra}
    return MoneyJSONResponse(body, status_code=200 if applied else 202)


async def _command(ctx, command_id: str):
    async with ctx.reader() as conn:
        return await conn.fetchrow(
            "SELECT command, status, result, mode, undo, undone_at FROM remediation.v_actions "
            "WHERE command_id = $1",
            command_id,
        )


async def _audit_rows(ctx, command_id: str, actor: str) -> int:
    async with ctx.reader() as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM remediation.v_audit WHERE command_id = $1 AND actor = $2",
            command_id,
            actor,
        )


async def _decide(
    request: Request, who, command_id: str, decision: str, body: Reason | None
) -> JSONResponse:
    ctx = request.app.state.ctx
    row = await _command(ctx, command_id)
    if row is None:
        raise HTTPException(404, f"no command {command_id}")
    if decision in ("approve", "reject") and row["status"] != "pending-approval":
        raise HTTPException(409, f"command {command_id} is {row['status']}, not pending approval")
    if decision == "undo" and (
        row["status"] != "executed"
        or row["mode"] != "execute"
        or not row["undo"]
        or row["undone_at"] is not None
    ):
        raise HTTPException(
            409, f"command {command_id} is {row['status']} ({row['mode']}): nothing to undo"
        )
    actor = f"api:{who.actor}"
    before = await _audit_rows(ctx, command_id, actor)
    reason = body.reason if body else None
    event = RemediationDecisionV1(
        decision_id=new_decision_id(),
        command_id=command_id,
        decision=decision,
        reason=reason,
        actor=who.actor,
        decided_at=datetime.now(UTC),
    )
    await publish(ctx, REMEDIATION_DECISIONS, command_id, event, "RemediationDecision")
    await record(ctx, event.decision_id, "remediation", command_id, decision, who.actor, reason)

    async def shown():
        return await _audit_rows(ctx, command_id, actor) > before

    applied = await wait_until(ctx, shown)
    after = await _command(ctx, command_id)
    return _answer(
        event.decision_id,
        applied,
        command={**after["command"], "status": after["status"], "result": after["result"]},
    )


responses: dict[int | str, dict[str, Any]] = {
    200: {"model": Decided},
    202: {"model": Decided},
    404: {"description": "unknown id"},
    409: {"description": "the decision does not apply in the current state"},
}


@router.post(
    "/remediation/commands/{command_id}/approve",
    tags=["remediation"],
    responses=responses,
    summary="Approve a command waiting for approval",
)
async def approve(
    request: Request, who: Approver, command_id: Id, body: Reason | None = None
) -> JSONResponse:
    return await _decide(request, who, command_id, "approve", body)


@router.post(
    "/remediation/commands/{command_id}/reject",
    tags=["remediation"],
    responses=responses,
    summary="Reject a command waiting for approval: it never runs",
)
async def reject(
    request: Request, who: Approver, command_id: Id, body: Reason | None = None
) -> JSONResponse:
    return await _decide(request, who, command_id, "reject", body)


@router.post(
    "/remediation/commands/{command_id}/undo",
    tags=["remediation"],
    responses=responses,
    summary="Undo an executed, reversible action",
)
async def undo(
    request: Request, who: Approver, command_id: Id, body: Reason | None = None
) -> JSONResponse:
    return await _decide(request, who, command_id, "undo", body)


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["yes", "no", "planned"] = Field(description="yes, no (false alarm) or planned")
    note: str | None = Field(None, max_length=2000)


@router.post(
    "/anomalies/{anomaly_id}/feedback",
    tags=["anomalies"],
    responses=responses,
    summary="A verdict on an anomaly (the anomaly service mutes repeats of rejected alerts)",
)
async def anomaly_feedback(
    request: Request, who: Approver, anomaly_id: Id, body: Feedback
) -> JSONResponse:
    ctx = request.app.state.ctx
    async with ctx.reader() as conn:
        if (
            await conn.fetchval(
                "SELECT 1 FROM anomaly.v_anomalies WHERE anomaly_id = $1", anomaly_id
            )
            is None
        ):
            raise HTTPException(404, f"no anomaly {anomaly_id}")
    event = AnomalyFeedbackV1(
        anomaly_id=anomaly_id,
        verdict=body.verdict,
        note=body.note,
        given_at=datetime.now(UTC),
        actor=who.actor,
    )
    decision_id = new_decision_id()
    await publish(ctx, Topics.ANOMALY_FEEDBACK, anomaly_id, event, "AnomalyFeedback")
    await record(
        ctx, decision_id, "anomaly-feedback", anomaly_id, body.verdict, who.actor, body.note
    )

    async def shown():
        async with ctx.reader() as conn:
            return await conn.fetchval(
                "SELECT feedback = $2 FROM anomaly.v_anomalies WHERE anomaly_id = $1",
                anomaly_id,
                body.verdict,
            )

    return _answer(decision_id, await wait_until(ctx, shown))


class Dismiss(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="Why it does not apply")


class Snooze(Dismiss):
    until: datetime = Field(description="When it comes back")


async def _recommendation(
    request: Request, who, rec_id: str, decision: str, reason: str, until: datetime | None
) -> JSONResponse:
    ctx = request.app.state.ctx
    async with ctx.reader() as conn:
        if (
            await conn.fetchval(
                "SELECT 1 FROM remediation.v_recommendations WHERE recommendation_id = $1", rec_id
            )
            is None
        ):
            raise HTTPException(404, f"no recommendation {rec_id}")
    until = until if until is None or until.tzinfo else until.replace(tzinfo=UTC)
    event = RecommendationDecisionV1(
        decision_id=new_decision_id(),
        recommendation_id=rec_id,
        decision=decision,
        reason=reason,
        until=until,
        actor=who.actor,
        decided_at=datetime.now(UTC),
    )
    await publish(ctx, RECOMMENDATION_DECISIONS, rec_id, event, "RecommendationDecision")
    await record(ctx, event.decision_id, "recommendation", rec_id, decision, who.actor, reason)
    state = "dismissed" if decision == "dismiss" else "snoozed"

    async def shown():
        async with ctx.reader() as conn:
            return await conn.fetchval(
                "SELECT state = $2 FROM remediation.v_recommendations WHERE recommendation_id = $1",
                rec_id,
                state,
            )

    return _answer(event.decision_id, await wait_until(ctx, shown))


@router.post(
    "/recommendations/{recommendation_id}/dismiss",
    tags=["recommendations"],
    responses=responses,
    summary="Dismiss a recommendation for good",
)
async def dismiss(
    request: Request, who: Approver, recommendation_id: Id, body: Dismiss
) -> JSONResponse:
    return await _recommendation(request, who, recommendation_id, "dismiss", body.reason, None)


@router.post(
    "/recommendations/{recommendation_id}/snooze",
    tags=["recommendations"],
    responses=responses,
    summary="Hide a recommendation until a date",
)
async def snooze(
    request: Request, who: Approver, recommendation_id: Id, body: Snooze
) -> JSONResponse:
    return await _recommendation(request, who, recommendation_id, "snooze", body.reason, body.until)
