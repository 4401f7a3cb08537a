"""`finfocus mcp`: FinFocus's cost data as MCP tools, on the official `mcp` SDK.

stdio (the default) serves one local client (an editor, a desktop assistant) with the CLI's
own reader access. `--http PORT` serves streamable HTTP on 127.0.0.1 and requires
`Authorization: Bearer <token>`: an API token (`finfocus token create`, any role: every tool
only reads) checked against the api's token store, or, where that store is not reachable, the
token from the secrets provider (`mcp-token`). Each tool returns the same JSON document as the
matching `--output json` command.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from services.api.assistant import tools

INSTRUCTIONS = (
    "FinFocus cost data (FOCUS billing lines, anomalies, forecasts, budgets, recommendations, "
    "savings). Money is a decimal string; currencies are never added together. Use `ask` for a "
    "question in words; it answers with the SQL it ran, the rows and a sentence."
)


def build_server():
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("finfocus", instructions=INSTRUCTIONS)

    @server.tool(
        description="Actual cost of stored lines in [start, end) (like `finfocus cost actual --output json`)."
    )
    async def cost_actual(
        start: Annotated[
            str | None, Field(description="Start (inclusive), YYYY-MM-DD or RFC 3339")
        ] = None,
        end: Annotated[
            str | None, Field(description="End (exclusive), YYYY-MM-DD or RFC 3339")
        ] = None,
        group_by: Annotated[
            str | None,
            Field(
                description="Comma-separated: provider, service, account, region, "
                "resource, type, sku, category, daily, monthly, tag:KEY"
            ),
        ] = None,
        filters: Annotated[
            list[str], Field(description="KEY=VALUE, KEY!=VALUE or tag:KEY=VALUE")
        ] = [],  # noqa: B006
        metric: Annotated[
            str, Field(description="billed, effective, list or contracted")
        ] = "billed",
    ) -> dict[str, Any]:
        return await tools.cost_actual(start, end, group_by, filters, metric)

    @server.tool(
        description="Monthly cost of a Pulumi plan (like `finfocus cost projected --output json`)."
    )
    async def cost_projected(
        plan: Annotated[
            dict[str, Any] | str,
            Field(description="The `pulumi preview --json` document, or a path to it"),
        ],
        currency: Annotated[str, Field(description="ISO 4217 currency to price in")] = "USD",
        region: Annotated[
            str | None, Field(description="AWS region for resources that name none")
        ] = None,
        plugins: Annotated[
            bool, Field(description="Also ask the pricing plugins (may use the network)")
        ] = False,
    ) -> dict[str, Any]:
        return await tools.cost_projected(plan, currency, region, plugins)

    @server.tool(description="Cost anomalies (like `finfocus anomalies list --output json`).")
    async def anomalies(
        since: Annotated[
            str | None, Field(description="YYYY-MM-DD, RFC 3339 or relative (7d, 12h)")
        ] = None,
        severity: Annotated[
            list[str], Field(description="low, medium, high, critical; `high+` for high or worse")
        ] = [],  # noqa: B006
        status: Annotated[
            list[str], Field(description="ongoing, open, acknowledged, resolved")
        ] = [],  # noqa: B006
    ) -> dict[str, Any]:
        return await tools.anomalies(since, severity, status)

    @server.tool(
        description="Daily cost forecasts with 80/95 % intervals (like `finfocus forecast show --output json`)."
    )
    async def forecast(
        group_by: Annotated[
            str, Field(description="Comma-separated dimensions; '' for the total")
        ] = "provider,account,service",
        filters: Annotated[list[str], Field(description="KEY=VALUE or tag:KEY=VALUE")] = [],  # noqa: B006
        horizon: Annotated[int, Field(ge=1, le=400, description="Days to show")] = 30,
    ) -> dict[str, Any]:
        return await tools.forecast(group_by, filters, horizon)

    @server.tool(
        description="Budgets with this period's spend and projection (like `finfocus budget list --output json`)."
    )
    async def budgets() -> dict[str, Any]:
        return await tools.budgets()

    @server.tool(
        description="Savings recommendations (like `finfocus recommendations list --output json`)."
    )
    async def recommendations(
        state: Annotated[
            str, Field(description="open, dismissed, snoozed, resolved or all")
        ] = "open",
        type: Annotated[str | None, Field(description="Only this type, e.g. idle-instance")] = None,  # noqa: A002
    ) -> dict[str, Any]:
        return await tools.recommendations(state, type)

    @server.tool(
        description="Realised against expected savings of executed actions (like `finfocus savings report --output json`)."
    )
    async def savings(
        by: Annotated[
            str, Field(description="Comma-separated: playbook, account, action")
        ] = "playbook,account,action",
    ) -> dict[str, Any]:
        return await tools.savings(by)

    @server.tool(
        description="A cost question in words: the SQL run (read-only, checked), its rows and a sentence."
    )
    async def ask(
        question: Annotated[
            str,
            Field(
                min_length=1,
                max_length=2000,
                description="e.g. what did we spend on ec2 last month",
            ),
        ],
    ) -> dict[str, Any]:
        return await tools.ask(question)

    return server


def run_stdio() -> None:
    build_server().run("stdio")


class BearerGate:
    """ASGI wrapper: 401 unless the request carries a token `check` accepts."""

    def __init__(self, app, check) -> None:
        self.app, self.check = app, check

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            value = headers.get(b"authorization", b"").decode("latin-1")
            token = value[7:].strip() if value.lower().startswith("bearer ") else ""
            if not token or not await self.check(token):
                body = b'{"detail": "a bearer token is required"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def token_checker():
    """API tokens from the api's store when it answers, else the secrets provider's `mcp-token`."""
    import hmac

    from finfocus.secrets import secrets_from_environment

    fallback = secrets_from_environment().get("mcp-token")

    async def check(token: str) -> bool:
        if fallback is not None and hmac.compare_digest(token, fallback.reveal()):
            return True
        try:
            from services.api import store
            from services.api.cli import _database_url
            from services.api.security import token_hash
        except ImportError:
            return False
        import asyncpg

        try:
            conn = await asyncpg.connect(_database_url())
        except (OSError, asyncpg.PostgresError, RuntimeError, ValueError):
            return False
        try:
            return await store.token_principal(conn, token_hash(token)) is not None
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()

    return check


def run_http(port: int, host: str = "127.0.0.1") -> None:
    import uvicorn

    app = BearerGate(build_server().streamable_http_app(host=host), token_checker())
    uvicorn.run(app, host=host, port=port, log_level="warning")
