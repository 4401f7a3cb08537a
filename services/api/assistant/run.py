"""Running a checked query: as the reader role, in a READ ONLY transaction, with a statement
timeout, a row limit and UTC, whatever connection the caller hands in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from finfocus.db import READER_ROLE
from services.api.assistant.safety import CheckedQuery

STATEMENT_TIMEOUT_MS = 5000
ROW_LIMIT = 1000


class QueryRefused(RuntimeError):
    """The connection cannot run the query as the reader role."""


@dataclass
class Result:
    columns: list[str]
    rows: list[dict[str, Any]]  # raw values (Decimal, date), for phrasing
    truncated: bool


async def execute(
    conn, query: CheckedQuery, *, timeout_ms: int = STATEMENT_TIMEOUT_MS, row_limit: int = ROW_LIMIT
) -> Result:
    """`query.sql` in a read-only transaction as `finfocus_reader`; at most `row_limit` rows."""
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        await conn.execute("SET LOCAL lock_timeout = 1000")
        await conn.execute("SET LOCAL TimeZone = 'UTC'")
        await conn.execute("SET LOCAL search_path = pg_catalog")
        if await conn.fetchval("SELECT current_user") != READER_ROLE:
            try:
                await conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
            except Exception as exc:  # noqa: BLE001 - any refusal means: do not run it
                raise QueryRefused(f"cannot switch to role {READER_ROLE}: {exc}") from None
        # fetched whole with a LIMIT around it, not through a cursor: PostgreSQL plans a
        # portal read in batches without parallel workers (twice as slow on a long period)
        statement = await conn.prepare(
            f"SELECT * FROM ({query.sql}) AS assistant_query LIMIT {int(row_limit) + 1}"
        )
        columns = [a.name for a in statement.get_attributes()]
        records = await statement.fetch()
    rows = [dict(zip(columns, r.values())) for r in records[:row_limit]]
    return Result(columns, rows, len(records) > row_limit)


def to_json(value: Any) -> Any:
    """Money and other numerics as decimal strings, dates as ISO text, JSON as it is."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool | int | str | dict | list) or value is None:
        return value
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)
