"""`GET /api/v1/health`: no authentication; says whether the api reaches its database."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from finfocus import __version__

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get(
    "/health",
    summary="Liveness and database reachability (no authentication)",
    responses={503: {"description": "The database cannot be reached"}},
)
async def health(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    database = "ok"
    try:
        async with ctx.reader() as conn:
            await conn.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - health answers, whatever the database does
        database = "unavailable"
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "version": __version__,
        "database": database,
    }
    return JSONResponse(body, status_code=200 if database == "ok" else 503)
