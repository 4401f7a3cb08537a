"""`POST /api/v1/ai/query`: a question in words, answered by the assistant
(`services.api.assistant.query`), each question logged in `api.assistant_queries`."""

from __future__ import annotations

import importlib
import time

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from services.api import store
from services.api.auth import Viewer
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse

router = APIRouter(
    prefix="/api/v1",
    default_response_class=MoneyJSONResponse,
    responses=COMMON_RESPONSES,
    tags=["assistant"],
)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)


def _engine():
    try:
        module = importlib.import_module("services.api.assistant")
    except ModuleNotFoundError as exc:
        if exc.name == "services.api.assistant":
            return None
        raise
    return getattr(module, "query", None)


@router.post(
    "/ai/query",
    summary="Ask a question about costs in words",
    responses={503: {"description": "no assistant installed"}},
)
async def ai_query(request: Request, who: Viewer, body: Question) -> dict:
    ctx = request.app.state.ctx
    query = _engine()
    if query is None:
        raise HTTPException(503, "the assistant is not installed")
    started = time.monotonic()
    answer: dict | None = None
    error: str | None = None
    try:
        answer = await query(body.question, ctx=ctx, principal=who)
        return answer
    except HTTPException as exc:
        error = str(exc.detail)
        raise
    except ValueError as exc:  # a question the assistant refuses or cannot answer safely
        error = str(exc)
        raise HTTPException(400, error) from None
    finally:
        async with ctx.pool.acquire() as conn:
            await store.log_query(
                conn,
                actor=who.actor,
                question=body.question,
                sql=(answer or {}).get("sql"),
                engine=(answer or {}).get("engine"),
                row_count=len((answer or {}).get("rows") or []),
                error=error or (answer or {}).get("error"),  # not-understood, unsafe, timeout...
                duration_ms=int((time.monotonic() - started) * 1000),
            )
