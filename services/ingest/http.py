"""HTTP intake: `POST /v1/billing-records` with a JSON array or NDJSON of BillingRecord v1.

Starlette on uvicorn (h11), bounded before anything else happens: a connection limit, a
deadline for the request line and headers (slow clients are cut off), a cap on their size and
count, the bearer token (from the secrets provider) checked in constant time before the body
is read, a body cap and deadline, and caps on rows per request and on the errors listed back.
Every client error is a 4xx with a JSON reason; nothing answers with a traceback. Accepted rows
are published on `raw-billing` as one import job; refused rows are dead-lettered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from schemas.ingest import BillingRecordV1

logger = logging.getLogger(__name__)
PATH = "/v1/billing-records"
#: accept(records, checksum) -> job id: publishes and records the accepted rows
Accept = Callable[[list[BillingRecordV1], str], Awaitable[str]]
Reject = Callable[[list[tuple[int, bytes, str]]], Awaitable[None]]
#: columns only ingest's importer sets: a producer may not choose a billing scope or version
INGEST_ONLY = ("x_BillingScope", "x_BillingScopeVersion")


@dataclass(frozen=True)
class IntakeLimits:
    """What one client may cost the service. The defaults suit a billing feed: a request is a
    chunk of rows, not a whole month."""

    #: largest body, bytes (413 beyond, before reading it)
    max_body_bytes: int = 16 * 1024 * 1024
    #: rows per request (413 beyond, before validating any)
    max_rows: int = 50_000
    #: per-row errors listed in a response (the rest are counted)
    max_errors: int = 100
    #: request line and headers, bytes (431 beyond)
    max_head_bytes: int = 16 * 1024
    #: header fields (431 beyond)
    max_headers: int = 64
    #: seconds to send the request line and headers (then the connection is closed)
    head_timeout_s: float = 10.0
    #: seconds to send the body (408 after)
    body_timeout_s: float = 60.0
    #: open connections; more are closed at once with a 503
    max_connections: int = 64
    #: nesting of JSON objects and arrays in a row (400 beyond)
    max_depth: int = 32


class BodyError(ValueError):
    """A request body refused as a whole: `status` and the one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _depth(value: Any, limit: int, level: int = 1) -> bool:
    """Whether `value` nests at most `limit` levels (walks no further than that)."""
    if level > limit:
        return False
    if isinstance(value, dict):
        return all(_depth(v, limit, level + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth(v, limit, level + 1) for v in value)
    return True


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_no_constants)
_SPACE = " \t\r\n"


def _array_items(text: str, max_rows: int) -> list[tuple[bytes, Any]]:
    """Elements of a JSON array, decoded one at a time so that a body of millions of tiny rows
    is refused after `max_rows` instead of being built in memory first."""
    items: list[tuple[bytes, Any]] = []
    end = len(text)
    i = 1
    while True:
        while i < end and text[i] in _SPACE:
            i += 1
        if i < end and text[i] == "]" and not items:
            i += 1
            break
        if len(items) >= max_rows:
            raise BodyError(
                413, f"more than {max_rows} rows in one request: send them in smaller requests"
            )
        item, stop = _decoder.raw_decode(text, i)
        items.append((text[i:stop].encode(), item))
        i = stop
        while i < end and text[i] in _SPACE:
            i += 1
        if i < end and text[i] == ",":
            i += 1
            continue
        if i < end and text[i] == "]":
            i += 1
            break
        raise ValueError(f"expected ',' or ']' at character {i}")
    if text[i:].strip(_SPACE):
        raise ValueError(f"extra data after the array at character {i}")
    return items


def _lines(text: bytes) -> Iterator[bytes]:
    """The non-blank lines of an NDJSON body, one at a time (a body of millions of lines is
    refused after the row cap, not split into millions of objects first)."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find(b"\n", start)
        if stop < 0:
            stop = end
        line = text[start:stop]
        if line.strip():
            yield line
        start = stop + 1


def parse_body(body: bytes, limits: IntakeLimits = IntakeLimits()) -> list[tuple[int, bytes, Any]]:
    """(index, raw bytes, parsed JSON or an exception) per row of a JSON array or NDJSON.

    Raises `BodyError` for a body refused as a whole: too many rows (413), rows nested deeper
    than `limits.max_depth` (400).
    """
    text = body.strip()
    if text.startswith(b"["):
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [
                (
                    0,
                    body,
                    ValueError(f"body is not JSON: not UTF-8 ({exc.reason} at byte {exc.start})"),
                )
            ]
        try:
            items = _array_items(decoded, limits.max_rows)
        except RecursionError:
            raise BodyError(400, f"body is nested deeper than {limits.max_depth} levels") from None
        except ValueError as exc:
            if isinstance(exc, BodyError):
                raise
            return [(0, body, ValueError(f"body is not JSON: {exc}"))]
        rows = [(i, raw, item) for i, (raw, item) in enumerate(items)]
    else:
        rows = []
        for i, line in enumerate(_lines(text)):
            if i >= limits.max_rows:
                raise BodyError(
                    413,
                    f"more than {limits.max_rows} rows in one request: send them in smaller requests",
                )
            try:
                rows.append((i, line, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                if "depth limit" in str(exc) or "recursion" in str(exc):
                    raise BodyError(
                        400, f"row {i} is nested deeper than {limits.max_depth} levels"
                    ) from None
                rows.append((i, line, ValueError(f"line is not JSON: {exc}")))
    for i, _, item in rows:
        if not isinstance(item, Exception) and not _depth(item, limits.max_depth):
            raise BodyError(400, f"row {i} is nested deeper than {limits.max_depth} levels")
    return rows


def check_rows(
    body: bytes, limits: IntakeLimits = IntakeLimits()
) -> tuple[list[BillingRecordV1], list[dict[str, Any]], list[tuple[int, bytes, str]]]:
    """Valid records, per-row errors for the response, and the refused rows' bytes.

    Raises `BodyError` when the body is refused as a whole (see `parse_body`), and for rows
    carrying the billing scope: only ingest's importer sets it, and the intake strips nothing
    silently (400 with the rows named).
    """
    rows = parse_body(body, limits)
    scoped = [
        i for i, _, item in rows if isinstance(item, dict) and any(k in item for k in INGEST_ONLY)
    ]
    if scoped:
        listed = ", ".join(map(str, scoped[:20])) + (" ..." if len(scoped) > 20 else "")
        raise BodyError(
            400,
            f"row(s) {listed} set x_BillingScope or x_BillingScopeVersion, which only ingest's "
            "importer sets: send the rows without them",
        )
    records, errors, refused = [], [], []
    for index, raw, item in rows:
        if isinstance(item, Exception):
            reason = str(item)
        elif not isinstance(item, dict):
            reason = "row is not a JSON object"
        else:
            try:
                records.append(BillingRecordV1.model_validate(item).with_record_id())
                continue
            except ValidationError as exc:
                reason = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False)
                )
            except (ValueError, TypeError, OverflowError) as exc:  # the row's own fault
                reason = f"{type(exc).__name__}: {exc}"
        errors.append({"index": index, "error": reason})
        refused.append((index, raw, reason))
    return records, errors, refused


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers={"connection": "close"})


class _Intake:
    """The endpoint: checks in the order that costs a client's peer least."""

    def __init__(
        self, token: str | None, limits: IntakeLimits, accept: Accept, reject: Reject
    ) -> None:
        self._token = token.encode() if token else None
        self._limits = limits
        self._accept = accept
        self._reject = reject

    async def handle(self, request: Request) -> JSONResponse:
        limits = self._limits
        raw_headers = request.headers.raw
        if len(raw_headers) > limits.max_headers:
            return _error(431, f"more than {limits.max_headers} header fields")
        if sum(len(k) + len(v) for k, v in raw_headers) > limits.max_head_bytes:
            # a head that arrived whole in one segment is parsed before any size check
            return _error(431, f"request headers over {limits.max_head_bytes} bytes")
        if not self._authorised(request.headers.get("authorization", "")):
            return _error(401, "missing or wrong bearer token")
        declared = request.headers.get("content-length")
        if declared is None:
            return _error(411, "Content-Length is required")
        length = int(declared)  # h11 has already refused anything but digits
        if length > limits.max_body_bytes:
            return _error(
                413, f"body of {length} bytes is over the limit of {limits.max_body_bytes}"
            )
        try:
            async with asyncio.timeout(limits.body_timeout_s):
                body = await request.body()
        except TimeoutError:
            return _error(408, f"body not received within {limits.body_timeout_s:g} s")
        try:
            records, errors, refused = check_rows(body, limits)
        except BodyError as exc:
            return _error(exc.status, str(exc))
        if refused:
            await self._reject(refused)
        job_id = None
        if records:
            job_id = await self._accept(records, hashlib.sha256(body).hexdigest())
        listed = errors[: limits.max_errors]
        payload = {
            "accepted": len(records),
            "rejected": len(errors),
            "errors": listed,
            "job_id": job_id,
        }
        if len(errors) > len(listed):
            payload["errors_not_listed"] = len(errors) - len(listed)
        return JSONResponse(
            payload, status_code=200 if records else 422, headers={"connection": "close"}
        )

    def _authorised(self, header: str) -> bool:
        if not self._token:
            return False  # no token configured: nobody gets in
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token
        )


def _guarded_protocol(limits: IntakeLimits) -> type[H11Protocol]:  # noqa: C901 - the class it returns overrides several h11 callbacks (counted here)
    """uvicorn's h11 protocol with what it lacks before the application runs: a deadline for
    the request line and headers, a cap on their size answered with 431, and a connection
    limit that closes surplus connections instead of holding them."""

    class GuardedH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(503, "too many connections")
                return
            self._arm()

        def _arm(self) -> None:
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self._refuse(408, "request line and headers not received in time")

        def _refuse(self, status: int, reason: str) -> None:
            self._disarm()
            body = orjson.dumps({"error": reason})
            phrase = {
                408: "Request Timeout",
                431: "Request Header Fields Too Large",
                503: "Service Unavailable",
            }
            self.transport.write(
                f"HTTP/1.1 {status} {phrase[status]}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._head_timer is not None:  # still reading the request line and headers
                self._head_bytes += len(data)
                if self._head_bytes > limits.max_head_bytes and b"\r\n\r\n" not in data:
                    self._refuse(
                        431, f"request line and headers over {limits.max_head_bytes} bytes"
                    )
                    return
            super().data_received(data)
            if self.cycle is not None:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11


class IntakeServer:
    """Serves the intake endpoint until `stop()`."""

    def __init__(
        self,
        *,
        token: str | None,
        max_bytes: int | None = None,
        accept: Accept,
        reject: Reject,
        limits: IntakeLimits | None = None,
    ) -> None:
        limits = limits or IntakeLimits()
        if max_bytes is not None:
            limits = IntakeLimits(**{**limits.__dict__, "max_body_bytes": max_bytes})
        self.limits = limits
        self._endpoint = _Intake(token, limits, accept, reject)
        self._server: uvicorn.Server | None = None
        self._loop_task: asyncio.Task | None = None

    def asgi(self) -> Starlette:
        """The Starlette application (JSON answers for unknown paths and methods too)."""

        async def http_error(_request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, HTTPException)
            return _error(exc.status_code, exc.detail)

        async def server_error(_request: Request, exc: Exception) -> JSONResponse:
            logger.error("http intake error: %s: %s", type(exc).__name__, exc)
            return _error(500, "internal error")

        return Starlette(
            routes=[Route(PATH, self._endpoint.handle, methods=["POST"])],
            exception_handlers={HTTPException: http_error, Exception: server_error},
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.servers[0].sockets[0].getsockname()[1]

    async def start(self, host: str, port: int) -> None:
        config = uvicorn.Config(
            self.asgi(),
            host=host,
            port=port,
            http=_guarded_protocol(self.limits),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            h11_max_incomplete_event_size=self.limits.max_head_bytes,
            limit_concurrency=self.limits.max_connections + 1,
            timeout_keep_alive=2,
            timeout_graceful_shutdown=5,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        # startup/main_loop/shutdown rather than serve(): serve() would take over the process's
        # signal handlers, which belong to the service around it
        await server.startup()
        self._server = server
        self._loop_task = asyncio.create_task(server.main_loop(), name="ingest-http-intake")
        logger.info("http intake listening", extra={"fields": {"host": host, "port": self.port}})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._loop_task is not None:
                await self._loop_task
            await self._server.shutdown()
            self._server = None


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:16]}"
