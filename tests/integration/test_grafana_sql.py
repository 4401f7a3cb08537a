"""Every SQL query of the Grafana dashboards runs, as finfocus_reader, on the views of all
services migrated into a real PostgreSQL (empty views but one: a query that names a missing
column, view or function, or a type error in its plan, fails)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg
import pytest

from finfocus.db import READER_ROLE, migrate
from finfocus.settings import SERVICES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if "rawSql" in target:
                    out.append(
                        (f"{path.name} / {panel['title']} / {target['refId']}", target["rawSql"])
                    )
    return out


def with_macros(sql: str) -> str:
    """Grafana's `$__timeFilter(col)` as Grafana expands it, over the last 60 days to 30 ahead."""
    return re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        r"\1 BETWEEN now() - interval '60 days' AND now() + interval '30 days'",
        sql,
    )


async def test_every_dashboard_sql_query_runs_as_the_reader(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        for service in SERVICES:
            module = __import__(f"services.{service}.app", fromlist=["MIGRATIONS_DIR"])
            directory = getattr(module, "MIGRATIONS_DIR", None)
            if directory is None:
                directory = __import__(
                    f"services.{service}.store", fromlist=["MIGRATIONS_DIR"]
                ).MIGRATIONS_DIR
            await migrate(conn, service, directory)
        await conn.execute(
            "INSERT INTO pricing.plugin_health (plugin, state, calls, failures, cache_hits, restarts, updated_at)"
            " VALUES ('aws-public', 'closed', 3, 0, 1, 0, now())"
        )
        await conn.execute(f"SET ROLE {READER_ROLE}")
        await conn.execute("SET default_transaction_read_only = on")
        found = queries()
        assert len(found) >= 20
        for name, sql in found:
            assert "$" not in with_macros(sql), name
            try:
                rows = await conn.fetch(with_macros(sql))
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{name}: {exc}\n{sql}") from None
            if "v_plugin_health" in sql:
                assert rows and rows[0]["plugin"] == "aws-public"
    finally:
        await conn.close()
