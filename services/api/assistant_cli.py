"""`finfocus ask QUESTION` and `finfocus mcp` (registered by services/api/cli.py).

Kept outside the `assistant` package so that building the CLI does not import sqlglot
and the engines: they load when `ask` or `mcp` runs.
"""

from __future__ import annotations

import typer

from finfocus.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    fail,
    print_json,
    print_ndjson,
    print_table,
    run,
)


def register(app: typer.Typer) -> None:
    @app.command("ask")
    def ask(
        question: str = typer.Argument(
            ..., help='A cost question in words, e.g. "what did we spend on ec2 last month"'
        ),
        engine: str = typer.Option(
            None, "--engine", help="offline (default, no model) or llm (FINFOCUS_LLM_URL)"
        ),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Answer a question about costs: the SQL it ran (checked, read-only), the rows and a sentence."""
        from services.api.assistant import ENGINES, tools

        if engine is not None and engine not in ENGINES:
            fail(f"unknown --engine {engine!r}; use one of {', '.join(ENGINES)}", 2)
        try:
            doc = run(tools.ask(question, engine))
        except Exception as exc:  # noqa: BLE001 - no stack, no views yet: one line, exit 1
            fail(f"cannot answer: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        if output is OutputFormat.JSON:
            print_json(doc)
        elif output is OutputFormat.NDJSON:
            print_ndjson([dict(zip(doc["columns"], row)) for row in doc["rows"]])
        else:
            typer.echo(doc["answer"])
            if doc["rows"] and len(doc["rows"]) > 1:
                print_table(doc["columns"], doc["rows"][:50], title=None)
            if doc.get("sql"):
                typer.echo(f"SQL: {doc['sql']}", err=True)
        if doc.get("error") in ("unsafe", "query-failed", "timeout", "llm"):
            raise typer.Exit(1)

    @app.command("mcp")
    def mcp(
        http: int = typer.Option(
            None,
            "--http",
            help="Serve streamable HTTP on 127.0.0.1:PORT (bearer token) instead of stdio",
        ),
    ) -> None:
        """Serve FinFocus's tools (cost_actual, cost_projected, anomalies, forecast, budgets,
        recommendations, savings, ask) to MCP clients, over stdio or streamable HTTP."""
        from services.api.assistant import mcp_server

        if http is None:
            mcp_server.run_stdio()
        else:
            mcp_server.run_http(http)
