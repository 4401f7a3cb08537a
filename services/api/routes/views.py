"""Saved console views (a name for a URL with its query), per user or token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from services.api import store
from services.api.auth import Viewer
from services.api.jsonout import COMMON_RESPONSES, MoneyJSONResponse

router = APIRouter(
    prefix="/api/v1",
    default_response_class=MoneyJSONResponse,
    responses=COMMON_RESPONSES,
    tags=["views"],
)


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    path: str = Field(
        min_length=1,
        max_length=2000,
        pattern=r"^/[^/\\]",
        description="a console path with its query",
    )


@router.get("/views", summary="The caller's saved views")
async def list_views(request: Request, who: Viewer) -> dict:
    async with request.app.state.ctx.pool.acquire() as conn:
        return {"views": await store.list_views(conn, who.actor)}


@router.post("/views", summary="Save (or replace) a view by name")
async def save_view(request: Request, who: Viewer, body: View) -> dict:
    async with request.app.state.ctx.pool.acquire() as conn:
        view_id = await store.save_view(conn, who.actor, body.name, body.path)
    return {"view_id": view_id, "name": body.name, "path": body.path}


@router.delete("/views/{view_id}", summary="Delete one of the caller's saved views")
async def delete_view(
    request: Request, who: Viewer, view_id: Annotated[int, Path(ge=1, le=2**62)]
) -> dict:
    async with request.app.state.ctx.pool.acquire() as conn:
        if not await store.delete_view(conn, who.actor, view_id):
            raise HTTPException(404, f"no view {view_id}")
    return {"deleted": view_id}
