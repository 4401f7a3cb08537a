"""The api service: REST under /api/v1, the web console at / and the assistant, on FastAPI.

How to plug in
- A router: write `services/api/routes/<name>.py` with `router = APIRouter(prefix="/api/v1",
  tags=[...])` and add its name to `ROUTERS` below. Handlers take the caller as a parameter
  typed `Viewer`, `Approver` or `Admin` (from `services.api.auth`; `require_role("viewer" |
  "approver" | "admin")` is the dependency behind them): that one parameter is the whole
  authentication and role check (401 without credentials, 403 for a lesser role, and a
  console session's writes must carry its CSRF token).
- Auth: `Authorization: Bearer <token>` (tokens from `finfocus token create`, stored as
  sha256) or the console session cookie `finfocus_session` set by `POST /login` (fields
  `username`, `password`; HttpOnly, SameSite=Strict). Writes made with a session send the
  header `X-CSRF-Token` (value in the cookie `finfocus_csrf` and in `GET /api/v1/session`).
  Roles: viewer (reads) < approver (+ decisions) < admin (+ budgets, monitors, users, tokens).
- Data: `ctx = request.app.state.ctx` (`services.api.context.ApiContext`, or the dependency
  `services.api.auth.context`). `async with ctx.reader() as conn:` is a read-only connection
  as `finfocus_reader`, which sees only the other services' `v_*` views; `ctx.pool` is the
  api's own schema `api` (see store.py). Decisions are published as signed events
  (`services.api.decisions`), never written into another service's tables.
- The console (`services/api/console/`): if that package has `register(app)`, it is called
  after the API routers, so it may add page routes at / and mount static files.
- The assistant (`services/api/assistant/`): `POST /api/v1/ai/query` calls
  `services.api.assistant.query(question, ctx=ctx, principal=who)` (async; returns
  {"question", "sql", "columns", "rows", "answer", "engine"}); the api logs each question
  in `api.assistant_queries`.

`build_app()` returns the FastAPI app (tests drive it in-process with httpx);
`build_service()` wraps it in uvicorn for `finfocus serve api`, binding FINFOCUS_API_HOST
and FINFOCUS_API_PORT (0: a free port); the address it got is written to
FINFOCUS_HOME/run/api.url.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from finfocus import __version__
from finfocus.settings import FinFocusSettings
from services.api.config import ApiSettings
from services.api.context import ApiContext

logger = logging.getLogger(__name__)

#: modules under services/api/routes/ with a `router`
ROUTERS = (
    "health",
    "reads",
    "insights",
    "decisions",
    "budgets",
    "monitors",
    "playbooks",
    "assistant",
    "views",
)


def build_app(
    settings: FinFocusSettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    settings = ApiSettings.extending(settings)
    ctx = ApiContext(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        try:
            yield
        finally:
            await ctx.stop()

    app = FastAPI(
        title="FinFocus API",
        version=__version__,
        description="Costs, insights, anomalies, forecasts, budgets, recommendations and "
        "remediation decisions. Every operation but /api/v1/health needs a bearer token "
        "(`finfocus token create`) or a console session. Money is a decimal string.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    from services.api import auth
    from services.api.jsonout import install_error_handlers

    install_error_handlers(app)

    app.include_router(auth.router)
    app.include_router(auth.api_router)
    for name in ROUTERS:
        try:
            module = importlib.import_module(f"services.api.routes.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"services.api.routes.{name}":
                continue
            raise
        app.include_router(module.router)
    _plug_console(app)
    _mount_probes(app, ctx)
    return app


def _mount_probes(app: FastAPI, ctx: ApiContext) -> None:
    """/metrics, /healthz and /readyz on the api's own port (docs/metrics.md): ready once
    started and its read pool answers within 2 s (the deployments' readiness probe)."""
    from finfocus import metrics

    async def ready() -> tuple[bool, list[str]]:
        if ctx.readers is None:
            return False, ["starting"]

        async def ping() -> None:
            async with ctx.reader() as conn:
                await conn.fetchval("SELECT 1")

        try:
            await asyncio.wait_for(ping(), 2)
        except Exception as exc:  # noqa: BLE001 - readiness answers, whatever the database does
            return False, [f"database unreachable ({type(exc).__name__})"]
        return True, []

    metrics.mount(app, ready=ready)


def _plug_console(app: FastAPI) -> None:
    try:
        console = importlib.import_module("services.api.console")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("services.api.console"):
            if exc.name != "services.api.console":
                logger.warning("console not served: %s", exc)
            return
        raise
    register = getattr(console, "register", None)
    if register is not None:
        register(app)


Hook = Callable[[], Awaitable[None]]


class ApiService:
    """Runs the app under uvicorn with the hooks `finfocus serve` uses (`after_startup`,
    `on_shutdown`, `run`), like a FastStream app."""

    def __init__(self, app: FastAPI, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self._started: list[Hook] = []
        self._stopping: list[Hook] = []
        self.url: str | None = None

    def after_startup(self, hook: Hook) -> Hook:
        self._started.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self._stopping.append(hook)
        return hook

    def url_file(self) -> Path:
        return Path(self.settings.home) / "run" / "api.url"

    async def run(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=self.settings.api_host,
            port=self.settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            proxy_headers=False,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                raise SystemExit(
                    f"the api could not start on {self.settings.api_host}:{self.settings.api_port}"
                )
            await asyncio.sleep(0.05)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{self.settings.api_host if self.settings.api_host not in ('0.0.0.0', '::') else host}:{port}"
        self._write_url()
        logger.info("api listening", extra={"fields": {"url": self.url}})
        for hook in self._started:
            await hook()
        try:
            await task
        finally:
            for hook in self._stopping:
                await hook()
            self.url_file().unlink(missing_ok=True)

    def _write_url(self) -> None:
        path = self.url_file()
        if not path.parent.is_dir():
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.url or "")


def build_service(settings: ApiSettings | None = None) -> ApiService:
    """What `finfocus serve api` runs."""
    settings = ApiSettings.extending(settings)
    return ApiService(build_app(settings), settings)
