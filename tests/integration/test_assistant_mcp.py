"""`finfocus mcp` driven by the official SDK's client over stdio: every tool is listed with a
typed input schema, and answers with the same JSON as the matching `--output json` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finfocus.db import connect
from tests.fixtures.assistant.dataset import seed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOOLS = {
    "cost_actual",
    "cost_projected",
    "anomalies",
    "forecast",
    "budgets",
    "recommendations",
    "savings",
    "ask",
}


@pytest.fixture
async def env(database_url, tmp_path):
    conn = await connect(database_url)
    await seed(conn)
    await conn.close()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FINFOCUS_", "VAULT_"))}
    environ.update(
        FINFOCUS_DATABASE_URL=database_url,
        FINFOCUS_HOME=str(tmp_path / "home"),
        PYTHONPATH=str(ROOT),
    )
    return environ


def cli_json(env: dict, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def tool_json(result) -> dict:
    assert not result.is_error, result.content
    [block] = result.content
    return json.loads(block.text)


async def test_mcp_over_stdio_lists_typed_tools_and_answers_like_the_cli(env):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "finfocus.cli", "mcp"], env=env, cwd=str(ROOT)
    )
    async with Client(params) as client:
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        schemas = {t.name: t.input_schema for t in listed}
        assert schemas["ask"]["required"] == ["question"]
        assert schemas["ask"]["properties"]["question"]["type"] == "string"
        assert schemas["forecast"]["properties"]["horizon"]["maximum"] == 400
        assert {"start", "end", "group_by", "filters", "metric"} <= set(
            schemas["cost_actual"]["properties"]
        )
        assert "plan" in schemas["cost_projected"]["required"]

        costs = tool_json(
            await client.call_tool(
                "cost_actual",
                {
                    "start": "2026-09-01",
                    "end": "2026-10-01",
                    "group_by": "service",
                    "filters": ["provider=AWS"],
                },
            )
        )
        assert costs == cli_json(
            env,
            "cost",
            "actual",
            "--from",
            "2026-09-01",
            "--to",
            "2026-10-01",
            "--group-by",
            "service",
            "--filter",
            "provider=AWS",
        )
        assert costs["summary"]["totalCost"] and costs["results"]

        budgets = tool_json(await client.call_tool("budgets", {}))
        assert budgets == cli_json(env, "budget", "list")
        assert {b["name"] for b in budgets["budgets"]} == {
            "company-monthly",
            "data-team",
            "ec2",
            "search-staging",
        }

        anomalies = tool_json(await client.call_tool("anomalies", {"severity": ["high+"]}))
        assert anomalies == cli_json(env, "anomalies", "list", "--severity", "high+")

        recs = tool_json(await client.call_tool("recommendations", {}))
        assert recs == cli_json(env, "recommendations", "list")

        assert tool_json(await client.call_tool("savings", {})) == cli_json(
            env, "savings", "report"
        )
        forecasts = tool_json(await client.call_tool("forecast", {"horizon": 5}))
        assert (
            forecasts == cli_json(env, "forecast", "show", "--horizon", "5")
            and forecasts["forecasts"]
        )
        plan = next((ROOT / "tests" / "fixtures" / "pulumi").glob("*.json"))
        projected = tool_json(await client.call_tool("cost_projected", {"plan": str(plan)}))
        assert projected == cli_json(
            env, "cost", "projected", "--pulumi-json", str(plan), "--no-plugins"
        )
        assert projected == tool_json(
            await client.call_tool("cost_projected", {"plan": json.loads(plan.read_text())})
        )

        asked = tool_json(await client.call_tool("ask", {"question": "how much could we save"}))
        cli = cli_json(env, "ask", "how much could we save")
        asked.pop("elapsed_ms")
        cli.pop("elapsed_ms")
        assert asked == cli
        assert asked["rows"] == [["USD", 4, "320.59"]] and "320.59 USD" in asked["answer"]

        refused = await client.call_tool("ask", {"question": ""})
        assert refused.is_error  # the schema's min_length, checked before the tool runs


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_mcp_over_http_needs_a_bearer_token_an_api_token_or_the_secret(
    database_url, tmp_path
):
    import asyncio

    import httpx

    from finfocus.db import migrate
    from services.api import store
    from services.api.security import token_hash

    conn = await connect(database_url)
    await migrate(conn, "api", store.MIGRATIONS_DIR)
    await store.create_token(conn, "tok-1", token_hash("api-viewer-token"), "viewer", "mcp test")
    await conn.close()
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FINFOCUS_", "VAULT_"))}
    environ.update(
        FINFOCUS_DATABASE_URL=database_url,
        FINFOCUS_HOME=str(tmp_path / "home"),
        PYTHONPATH=str(ROOT),
        FINFOCUS_SECRET_MCP_TOKEN="from-the-secrets-provider",
    )
    # Popen returns at once: the server runs beside the test
    server = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "finfocus.cli", "mcp", "--http", str(port)],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(200):
                try:
                    await http.get(url)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert (await http.post(url, json=init, headers=headers)).status_code == 401
            wrong = await http.post(
                url, json=init, headers=headers | {"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
            for token in ("api-viewer-token", "from-the-secrets-provider"):
                ok = await http.post(
                    url, json=init, headers=headers | {"Authorization": f"Bearer {token}"}
                )
                assert ok.status_code == 200, ok.text
                assert '"finfocus"' in ok.text
    finally:
        server.terminate()
        server.wait(timeout=10)
