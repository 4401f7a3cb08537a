"""HTTP intake: `POST /v1/billing-records` with a JSON array or NDJSON of BillingRecord v1.

A deliberately small HTTP/1.1 server on asyncio (one request per connection): bearer-token
auth (the token comes from the secrets provider), 413 before reading an oversize body,
per-row errors in the response, accepted rows published on `raw-billing` as one import job.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.ingest import BillingRecordV1

logger = logging.getLogger(__name__)
PATH = "/v1/billing-records"
#: accept(records, checksum) -> job id: publishes and records the accepted rows
Accept = Callable[[list[BillingRecordV1], str], Awaitable[str]]
Reject = Callable[[list[tuple[int, bytes, str]]], Awaitable[None]]
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Payload Too Large", 422: "Unprocessable Entity", 500: "Internal Server Error"}


def parse_body(body: bytes) -> list[tuple[int, bytes, Any]]:
    """(index, raw bytes, parsed JSON or an exception) per row of a JSON array or NDJSON."""
    text = body.strip()
    if text.startswith(b"["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return [(0, body, ValueError(f"body is not JSON: {exc}"))]
        return [(i, orjson.dumps(item), item) for i, item in enumerate(items)]
    rows = []
    for i, line in enumerate(part for part in text.split(b"\n") if part.strip()):
        try:
            rows.append((i, line, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            rows.append((i, line, ValueError(f"line is not JSON: {exc}")))
    return rows


def check_rows(body: bytes) -> tuple[list[BillingRecordV1], list[dict[str, Any]], list[tuple[int, bytes, str]]]:
    """Valid records, per-row errors for the response, and the refused rows' bytes."""
    records, errors, refused = [], [], []
    for index, raw, item in parse_body(body):
        if isinstance(item, Exception):
            reason = str(item)
        elif not isinstance(item, dict):
            reason = "row is not a JSON object"
        else:
            try:
                records.append(BillingRecordV1.model_validate(item).with_record_id())
                continue
            except ValidationError as exc:
                reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())
        errors.append({"index": index, "error": reason})
        refused.append((index, raw, reason))
    return records, errors, refused


class IntakeServer:
    """Serves the intake endpoint until `stop()`."""

    def __init__(self, *, token: str | None, max_bytes: int, accept: Accept, reject: Reject) -> None:
        self._token = token
        self._max_bytes = max_bytes
        self._accept = accept
        self._reject = reject
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        logger.info("http intake listening", extra={"fields": {"host": host, "port": self.port}})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await self._respond(reader)
        except Exception as exc:  # a broken request must not take the service down
            logger.exception("http intake error")
            status, payload = 500, {"error": f"{type(exc).__name__}"}
        body = orjson.dumps(payload)
        head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        writer.write(head.encode() + body)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        request_line = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(request_line) < 2:
            return 400, {"error": "malformed request"}
        method, target = request_line[0], request_line[1].split("?", 1)[0]
        if target != PATH:
            return 404, {"error": f"no such endpoint {target}"}
        if method != "POST":
            return 405, {"error": "use POST"}
        if not self._authorised(headers.get("authorization", "")):
            return 401, {"error": "missing or wrong bearer token"}
        if "content-length" not in headers:
            return 411, {"error": "Content-Length is required"}
        length = int(headers["content-length"])
        if length > self._max_bytes:
            return 413, {"error": f"body of {length} bytes is over the limit of {self._max_bytes}"}
        body = await reader.readexactly(length)
        records, errors, refused = check_rows(body)
        if refused:
            await self._reject(refused)
        job_id = None
        if records:
            job_id = await self._accept(records, hashlib.sha256(body).hexdigest())
        status = 200 if records else 422
        return status, {"accepted": len(records), "rejected": len(errors), "errors": errors, "job_id": job_id}

    def _authorised(self, header: str) -> bool:
        if not self._token:
            return False  # no token configured: nobody gets in
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token.encode())


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:16]}"
