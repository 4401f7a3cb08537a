"""Publishing people's decisions as signed events (issuer `api`), and waiting briefly for the
owning service's view to show them.

The api never writes another service's tables: it checks the decision makes sense against
the view (404 unknown, 409 not applicable now), publishes the versioned command on the
owning service's topic signed as `api`, notes it in `api.decisions`, then waits up to
`FINFOCUS_API_DECISION_WAIT_S` (5 s) for the view to show it: 200 with the new state when it
does, 202 with the decision id when the service has not applied it yet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from finfocus.signing import sign
from schemas.topics import schema_headers
from services.api import store
from services.api.context import ISSUER, ApiContext


def new_decision_id() -> str:
    return f"dec-{uuid.uuid4().hex}"


async def publish(ctx: ApiContext, topic: str, key: str, model: BaseModel, schema: str) -> None:
    """Sign and send one decision; 503 when the broker cannot take it (nothing was decided)."""
    from aiokafka.errors import KafkaError
    from fastapi import HTTPException

    assert ctx.keys is not None
    value = model.model_dump_json().encode()
    headers = [(k, v.encode()) for k, v in schema_headers(schema).items()]
    headers.append(sign(ctx.keys, ISSUER, topic, value))
    try:
        bus = await ctx.bus()
        await asyncio.wait_for(bus.publish(topic, [(key.encode(), value, headers)]), 15)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise HTTPException(
            503, f"the broker did not take the decision ({type(exc).__name__}); try again"
        ) from None


async def record(
    ctx: ApiContext,
    decision_id: str,
    kind: str,
    subject: str,
    decision: str,
    actor: str,
    reason: str | None,
) -> None:
    assert ctx.pool is not None
    async with ctx.pool.acquire() as conn:
        await store.record_decision(conn, decision_id, kind, subject, decision, actor, reason)


async def wait_until(ctx: ApiContext, done: Callable[[], Awaitable[object]]) -> object | None:
    """`done()`'s first truthy answer within the decision wait, else None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.api_decision_wait_s
    while True:
        found = await done()
        if found:
            return found
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(0.1)
