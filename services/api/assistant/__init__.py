"""The assistant: a question in plain words -> one checked SELECT over the `v_*` views -> rows
and a sentence.

`answer(question, conn, today=...)` is what the API route, `finfocus ask` and the MCP `ask`
tool call. Engines only propose SQL; `safety.check` decides what runs and `run.execute` runs
it read-only as the reader role, so an engine (or a tag value it read) cannot write or leak.
"""

from __future__ import annotations

import time
from datetime import date

from services.api.assistant import run, safety, vocab
from services.api.assistant.understand import NotUnderstood

ENGINES = ("offline", "llm")


async def answer(
    question: str,
    conn,
    *,
    today: date,
    engine: str = "offline",
    llm=None,
    row_limit: int = run.ROW_LIMIT,
    timeout_ms: int = run.STATEMENT_TIMEOUT_MS,
    vocabulary: vocab.Vocabulary | None = None,
) -> dict:
    """{"question", "sql", "columns", "rows", "answer", "engine"} (+ "error" when refused)."""
    started = time.perf_counter()
    doc: dict = {
        "question": question,
        "sql": None,
        "columns": [],
        "rows": [],
        "answer": "",
        "engine": engine,
    }
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    import asyncpg

    try:
        words = vocabulary or await vocab.load(conn, key=_cache_key(conn))
    except (
        asyncpg.UndefinedTableError,
        asyncpg.InvalidSchemaNameError,
        asyncpg.InsufficientPrivilegeError,
    ):
        doc["answer"] = "No cost data yet: the pricing service has not run against this database."
        doc["error"] = "no-data"
        return doc
    if engine == "offline":
        from services.api.assistant import answers, offline
        from services.api.assistant.understand import understand

        try:
            plan = understand(question, words, today)
            ready = await offline.aggregate_ready(conn, plan)
            sql = offline.build_sql(plan, words, today, aggregate=ready)
        except NotUnderstood as exc:
            doc["answer"] = str(exc)
            doc["error"] = "not-understood"
            return doc
        except (ValueError, OverflowError):  # a date that does not exist: "since june 0000"
            doc["answer"] = "I could not read a date or number in the question."
            doc["error"] = "not-understood"
            return doc
        phrase = lambda rows: answers.phrase(plan, rows, words)  # noqa: E731
    else:
        from services.api.assistant import llm as llm_engine

        client = llm or llm_engine.LLMClient.from_environment()
        try:
            sql = await client.sql_for(question, words, today)
        except llm_engine.LLMError as exc:
            doc["answer"] = f"The language model gave no query: {exc}"
            doc["error"] = "llm"
            return doc
        phrase = None
    try:
        checked = safety.check(sql)
    except safety.UnsafeQuery as exc:
        doc["sql"] = sql
        doc["answer"] = f"Refused: {exc}."
        doc["error"] = "unsafe"
        return doc
    doc["sql"] = checked.sql
    try:
        result = await run.execute(conn, checked, timeout_ms=timeout_ms, row_limit=row_limit)
    except asyncpg.QueryCanceledError:
        doc["answer"] = f"The query took longer than {timeout_ms} ms and was cancelled."
        doc["error"] = "timeout"
        return doc
    except (asyncpg.PostgresError, run.QueryRefused) as exc:
        doc["answer"] = f"The query failed: {str(exc).splitlines()[0][:200]}"
        doc["error"] = "query-failed"
        return doc
    doc["columns"] = result.columns
    doc["rows"] = [[run.to_json(r[c]) for c in result.columns] for r in result.rows]
    if phrase is not None:
        doc["answer"] = phrase(result.rows)
    else:
        from services.api.assistant.llm import describe

        doc["answer"] = describe(result)
    if result.truncated:
        doc["answer"] += f" (first {row_limit} rows only)"
        doc["truncated"] = True
    doc["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return doc


def _cache_key(conn) -> str | None:
    try:
        addr = conn._addr  # asyncpg keeps where it connected
        return f"{addr}/{conn._params.database}"
    except AttributeError:
        return None


def configured_engine() -> str:
    """`FINFOCUS_ASSISTANT_ENGINE` (offline unless set to llm)."""
    import os

    return os.environ.get("FINFOCUS_ASSISTANT_ENGINE", "offline")


async def query(question: str, *, ctx, principal=None, engine: str | None = None) -> dict:
    """The API route's entry: `answer` on one of the api's reader connections, today in UTC."""
    from datetime import UTC, datetime

    async with ctx.reader() as conn:
        return await answer(
            question, conn, today=datetime.now(UTC).date(), engine=engine or configured_engine()
        )
