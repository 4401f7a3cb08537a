"""Remote mode: the command line as a client of a FinFocus API (`services/api`, `/api/v1`).

When `FINFOCUS_API_URL` and `FINFOCUS_API_TOKEN` are both set, the commands that change state
(remediation approve/reject/undo, anomalies feedback, recommendations dismiss/snooze, budget
set/delete) call the API instead of publishing events, and the reads that have an endpoint
(cost actual, anomalies list, forecast show, budget list, recommendations list, savings
report, remediation list/audit) print what the API answers: the same JSON documents as the
local `--output json`. The API checks the token's role: a viewer's approve is refused (403),
the command line says so and exits 1. Nothing here needs database or broker credentials.
"""

from __future__ import annotations

import json as jsonlib
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn
from urllib.parse import quote

from finfocus.cli.output import fail

URL_ENV = "FINFOCUS_API_URL"
TOKEN_ENV = "FINFOCUS_API_TOKEN"
TIMEOUT_ENV = "FINFOCUS_API_TIMEOUT"
PREFIX = "/api/v1"


class RemoteError(Exception):
    """The API answered with an error: the HTTP status and its `detail`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _detail(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'request'}: {e.get('msg')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail
        )
    return str(detail)


def path(*parts: str) -> str:
    """`/api/v1/a/b` with every part percent-encoded (ids come from users)."""
    return PREFIX + "".join("/" + quote(p, safe="") for p in parts)


@dataclass(frozen=True)
class Remote:
    url: str
    token: str
    timeout: float = 60.0

    def request(
        self, method: str, where: str, *, params: Any = None, json: Any = None
    ) -> tuple[int, Any]:
        """(status, JSON body) of a 2xx answer; RemoteError for any other answer; a clear
        failure (exit 1) when the API cannot be reached."""
        import httpx

        try:
            response = httpx.request(
                method,
                self.url.rstrip("/") + where,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            fail(f"cannot reach the FinFocus API at {self.url} ({URL_ENV}): {exc}")
        if response.status_code >= 400:
            raise RemoteError(response.status_code, _detail(response))
        # money stays Decimal (the API sends strings; a number would not become a float here)
        body = jsonlib.loads(response.content, parse_float=Decimal) if response.content else None
        return response.status_code, body

    def call(
        self,
        method: str,
        where: str,
        *,
        params: Any = None,
        json: Any = None,
        usage: tuple[int, ...] = (400, 422),
    ) -> tuple[int, Any]:
        """`request`, with errors turned into the command line's messages and exit codes:
        the statuses in `usage` exit 2 (a bad option value), every other error exits 1."""
        try:
            return self.request(method, where, params=params, json=json)
        except RemoteError as exc:
            self.fail(exc, usage)

    def get(self, where: str, params: Any = None, **kw) -> Any:
        return self.call("GET", where, params=params, **kw)[1]

    def fail(self, exc: RemoteError, usage: tuple[int, ...] = (400, 422)) -> NoReturn:
        if exc.status == 401:
            fail(
                f"the FinFocus API at {self.url} refused the token in {TOKEN_ENV} (401): {exc.detail}"
            )
        if exc.status == 403:
            fail(f"not allowed: {exc.detail} (the API at {self.url} answered 403 for this token)")
        fail(exc.detail, 2 if exc.status in usage else 1)


def remote() -> Remote | None:
    """The API to call when remote mode is configured, else None (the local stack)."""
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        fail(
            f"{URL_ENV} is set but {TOKEN_ENV} is not: create a token with "
            "`finfocus token create --role R` on the deployment and export it",
            2,
        )
    if not url.startswith(("http://", "https://")):
        fail(f"{URL_ENV}={url!r} is not an http(s) URL", 2)
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV) or 60)
    except ValueError:
        fail(f"{TIMEOUT_ENV} must be a number of seconds", 2)
    return Remote(url, token, timeout)
