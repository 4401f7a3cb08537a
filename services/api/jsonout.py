"""JSON answers with the CLI's encoding: Decimal money as strings, ISO dates (the shapes of
`--output json`), and clear errors for a database the services have not prepared yet."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from finfocus.cli.output import to_json

#: answers every authenticated operation may give besides its own
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid query or body value"},
    401: {"description": "No valid bearer token or session"},
    403: {
        "description": "The caller's role may not do this (or a session write without its CSRF token)"
    },
    404: {"description": "No such id"},
    409: {"description": "The decision does not apply in the current state"},
    503: {"description": "A service has not created its views yet"},
}


class MoneyJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return to_json(content).encode()


def bad_request(message: str) -> HTTPException:
    return HTTPException(400, message)


def install_error_handlers(app: FastAPI) -> None:
    async def not_ready(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"not ready: a service has not created its views yet ({exc})"},
            status_code=503,
        )

    async def data_error(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"invalid value: {exc}"}, status_code=400)

    for kind in (
        asyncpg.UndefinedTableError,
        asyncpg.InvalidSchemaNameError,
        asyncpg.UndefinedColumnError,
        asyncpg.InsufficientPrivilegeError,
    ):
        app.add_exception_handler(kind, not_ready)
    app.add_exception_handler(asyncpg.DataError, data_error)
