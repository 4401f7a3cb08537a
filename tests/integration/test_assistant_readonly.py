"""Behind the SQL gate, the database itself: even a statement that slipped past `safety.check`
runs read-only, as the reader role, under a timeout and a row limit."""

from __future__ import annotations

import asyncpg
import pytest

from finfocus.db import connect, migrate
from services.api.assistant import answer, run
from services.api.assistant.safety import CheckedQuery
from tests.fixtures.assistant.dataset import ROOT, TODAY

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(database_url):
    c = await connect(database_url)
    await migrate(c, "pricing", ROOT / "services" / "pricing" / "migrations")
    await c.execute(
        "INSERT INTO pricing.cost_lines (record_id, provider, billing_account_id, service_name, charge_category,"
        " charge_period_start, charge_period_end, billing_currency, billed_cost, price_source, priced_at, record)"
        " SELECT 'r' || i, 'AWS', '1', 'AmazonEC2', 'Usage', '2026-10-01T00:00:00Z', '2026-10-02T00:00:00Z', 'USD',"
        " 1.25, 'billed', now(), '{}'::jsonb FROM generate_series(1, 50) i"
    )
    try:
        yield c
    finally:
        await c.close()


def unchecked(sql: str) -> CheckedQuery:
    """A statement as if the gate had let it through: what the database alone must stop."""
    return CheckedQuery(sql, ("pricing.v_cost_lines",))


async def test_the_transaction_is_read_only_and_cannot_be_made_read_write_from_inside(conn):
    with pytest.raises(asyncpg.PostgresError, match="read-write"):
        await run.execute(
            conn, unchecked("SELECT set_config('transaction_read_only', 'off', true) AS x")
        )
    result = await run.execute(
        conn, unchecked("SELECT current_setting('transaction_read_only') AS ro")
    )
    assert result.rows == [{"ro": "on"}]


async def test_statements_that_are_not_a_select_cannot_even_be_run(conn):
    for sql in (
        "DELETE FROM pricing.cost_lines",
        "WITH d AS (DELETE FROM pricing.cost_lines RETURNING 1) SELECT count(*) FROM d",
        "SELECT 1 AS one; DELETE FROM pricing.cost_lines",
    ):
        with pytest.raises(asyncpg.PostgresError):
            await run.execute(conn, unchecked(sql))
    assert await conn.fetchval("SELECT count(*) FROM pricing.cost_lines") == 50


async def test_it_runs_as_the_reader_role_which_cannot_read_tables_behind_the_views(conn):
    result = await run.execute(conn, unchecked("SELECT current_user AS who"))
    assert result.rows == [{"who": "finfocus_reader"}]
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run.execute(conn, unchecked("SELECT count(*) FROM pricing.cost_lines"))


async def test_a_slow_statement_is_cancelled_by_the_statement_timeout(conn):
    with pytest.raises(asyncpg.QueryCanceledError):
        await run.execute(conn, unchecked("SELECT pg_sleep(5)"), timeout_ms=200)
    assert await conn.fetchval("SELECT 1") == 1  # the connection is usable afterwards


async def test_rows_beyond_the_limit_are_not_fetched(conn):
    doc = await answer("top 100 resources this month", conn, today=TODAY, row_limit=10)
    assert doc.get("error") is None
    result = await run.execute(
        conn, unchecked("SELECT record_id FROM pricing.v_cost_lines"), row_limit=7
    )
    assert len(result.rows) == 7 and result.truncated


async def test_settings_do_not_outlive_the_question(conn):
    await run.execute(conn, unchecked("SELECT 1 AS one"), timeout_ms=123)
    assert await conn.fetchval("SELECT current_user") != "finfocus_reader"
    assert await conn.fetchval("SHOW statement_timeout") != "123ms"
    assert await conn.fetchval("SHOW transaction_read_only") == "off"


async def test_a_timeout_is_an_answer_not_a_crash(conn):
    class Slow:
        async def sql_for(self, question, vocabulary, today):
            return "SELECT pg_sleep(5) FROM pricing.v_cost_lines"

    doc = await answer("anything", conn, today=TODAY, engine="llm", llm=Slow())
    assert doc["error"] == "unsafe"  # the gate stops pg_sleep before the database sees it
