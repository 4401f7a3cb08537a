"""Authentication (bearer token or console session) and role checks as FastAPI dependencies,
plus `/login`, `/logout` and `GET /api/v1/session`.

- `Authorization: Bearer <token>`: tokens from `finfocus token create`, looked up by sha256;
  with FINFOCUS_OIDC_ISSUER set, a JWT from that issuer (services/api/oidc.py).
- Console session: cookie `finfocus_session` (HttpOnly, SameSite=Strict) from `POST /login`.
  Writes (POST/PUT/PATCH/DELETE) made with a session must send the session's CSRF token in
  the `X-CSRF-Token` header (or a `csrf_token` form field); it is in the readable cookie
  `finfocus_csrf` and in `GET /api/v1/session`. Bearer requests need no CSRF token: a browser
  never adds that header by itself.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from services.api import store
from services.api.context import ApiContext
from services.api.oidc import OidcError
from services.api.security import (
    TOKEN_PREFIX,
    Principal,
    check_role,
    csrf_ok,
    hash_password,  # noqa: F401 - re-exported for the CLI and tests
    lower_role,
    new_secret,
    token_hash,
    verify_password,
)

logger = logging.getLogger(__name__)

SESSION_COOKIE = "finfocus_session"
CSRF_COOKIE = "finfocus_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="A token from `finfocus token create`")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="Console session from POST /login (writes need X-CSRF-Token)",
)


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def _unauthorized(detail: str = "authentication required") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """Who is asking; 401 without valid credentials."""
    ctx = context(request)
    assert ctx.pool is not None
    if request.headers.get("authorization") is not None:
        if bearer is None or not bearer.credentials:
            raise _unauthorized("Authorization must be `Bearer <token>`")
        credentials = bearer.credentials.strip()
        if ctx.oidc is not None and not credentials.startswith(TOKEN_PREFIX):
            try:
                return await ctx.oidc.verify(credentials)
            except OidcError as exc:
                logger.info("oidc token refused", extra={"fields": {"reason": str(exc)}})
                raise _unauthorized(f"OIDC token refused: {exc}") from None
        async with ctx.pool.acquire() as conn:
            row = await store.token_principal(conn, token_hash(credentials))
        if row is None:
            raise _unauthorized("unknown, revoked or expired token")
        if row["user_name"] is not None:
            role = lower_role(row["role"], row["user_role"])
            return Principal("user", row["user_name"], role, token_id=row["token_id"])
        return Principal("token", row["token_id"], row["role"])
    if session:
        async with ctx.pool.acquire() as conn:
            row = await store.session_principal(conn, token_hash(session))
        if row is not None:
            return Principal("user", row["user_name"], row["role"], csrf_token=row["csrf_token"])
    raise _unauthorized()


async def _csrf_from(request: Request) -> str | None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    return given


def require_role(role: str):
    """Dependency: the principal, if its role includes `role` (viewer < approver < admin);
    403 otherwise. A session's writes must carry its CSRF token (403 without)."""
    check_role(role)

    async def dependency(
        request: Request, who: Annotated[Principal, Depends(principal)]
    ) -> Principal:
        if not who.may(role):
            raise HTTPException(403, f"role {who.role} may not do this (needs {role})")
        if (
            who.csrf_token is not None
            and request.method not in SAFE_METHODS
            and not csrf_ok(who.csrf_token, await _csrf_from(request))
        ):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} for a session write")
        return who

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Approver = Annotated[Principal, Depends(require_role("approver"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]

router = APIRouter()

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FinFocus · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label,input,button{{display:block;width:100%;margin:.3rem 0}}input{{padding:.4rem}}
.error{{color:#b00020}}</style></head>
<body><h1>FinFocus</h1>{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>
"""


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no //host): no open redirect after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_page(error: str | None = None, next_path: str = "/", status: int = 200) -> HTMLResponse:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(
        LOGIN_PAGE.format(error=message, next=html.escape(_safe_next(next_path))),
        status_code=status,
    )


@router.get("/login", include_in_schema=False)
async def login_form(next: str = "/") -> HTMLResponse:  # noqa: A002 - the query name
    return login_page(next_path=next)


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    ctx = context(request)
    assert ctx.pool is not None
    address = request.client.host if request.client else "unknown"
    if ctx.throttle.blocked(username, address):
        refused = login_page("Too many failed attempts; try again later.", next, 429)
        refused.headers["Retry-After"] = str(ctx.throttle.retry_after(username, address))
        return refused
    async with ctx.pool.acquire() as conn:
        user = await store.user_for_login(conn, username)
    if user is None or not verify_password(user["password_hash"], password):
        if user is None:
            verify_password(None, password)  # the same work as for a real user: no timing oracle
        ctx.throttle.failed(username, address)
        logger.warning(
            "failed login", extra={"fields": {"user": username[:64], "address": address}}
        )
        return login_page("Wrong user name or password.", next, 401)
    ctx.throttle.succeeded(username)
    cookie, csrf = new_secret(), new_secret()
    hours = ctx.settings.api_session_hours
    async with ctx.pool.acquire() as conn:
        await store.create_session(
            conn, token_hash(cookie), user["name"], csrf, datetime.now(UTC) + timedelta(hours=hours)
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    secure = ctx.settings.api_cookie_secure
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=int(hours * 3600),
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )
    logger.info("login", extra={"fields": {"user": user["name"]}})
    return response


@router.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
async def logout(request: Request) -> Response:
    """Ends the session. GET is accepted too: the cookie is SameSite=Strict, so another site
    cannot make a browser log out, and a link is what a console offers."""
    ctx = context(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and ctx.pool is not None:
        async with ctx.pool.acquire() as conn:
            await store.end_session(conn, token_hash(cookie))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


api_router = APIRouter(
    prefix="/api/v1",
    tags=["session"],
    responses={401: {"description": "No valid bearer token or session"}},
)


@api_router.get("/session", summary="Who is asking, their role and (for a session) the CSRF token")
async def whoami(who: Viewer) -> dict:
    return {
        "kind": who.kind,
        "name": who.name,
        "actor": who.actor,
        "role": who.role,
        "csrf_token": who.csrf_token,
    }
