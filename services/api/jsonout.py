"""JSON answers with the CLI's encoding: Decimal money as strings, ISO dates (the shapes of
`--output json`), and clear errors for a database the services have not prepared yet."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from finfocus.cli.output import to_json


class MoneyJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return to_json(content).encode()


def bad_request(message: str) -> HTTPException:
    return HTTPException(400, message)


def install_error_handlers(app: FastAPI) -> None:
    async def not_ready(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"not ready: a service has not created its views yet ({exc})"},
                            status_code=503)

    async def data_error(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"invalid value: {exc}"}, status_code=400)

    for kind in (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError,
                 asyncpg.UndefinedColumnError, asyncpg.InsufficientPrivilegeError):
        app.add_exception_handler(kind, not_ready)
    app.add_exception_handler(asyncpg.DataError, data_error)
