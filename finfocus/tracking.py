"""Units of work for the consume pipeline: one transaction, and the tracking record inside it
(group, topic, partition, offset range of the records it processed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg


@dataclass(frozen=True, slots=True)
class Range:
    """The offsets of one partition in a processed batch: the tracking record."""

    topic: str
    partition: int
    first: int
    last: int
    records: int


def ranges(records: Sequence[Any]) -> list[Range]:
    """Per (topic, partition): first and last offset and how many records."""
    spans: dict[tuple[str, int], list[int]] = {}
    for r in records:
        span = spans.get((r.topic, r.partition))
        if span is None:
            spans[(r.topic, r.partition)] = [r.offset, r.offset, 1]
        else:
            span[0] = min(span[0], r.offset)
            span[1] = max(span[1], r.offset)
            span[2] += 1
    return [Range(t, p, first, last, n) for (t, p), (first, last, n) in spans.items()]


class UnitOfWork(Protocol):
    """One database transaction and the tracking record inside it."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    async def track(self, tx: Any, group: str, spans: Sequence[Range]) -> None: ...


TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.consumer_tracking (
    group_id text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    first_offset bigint NOT NULL,
    last_offset bigint NOT NULL,
    records bigint NOT NULL,
    records_total bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
)
"""

TRACK = """
INSERT INTO {schema}.consumer_tracking AS t
    (group_id, topic, partition, first_offset, last_offset, records, records_total)
SELECT $1, topic, partition, first_offset, last_offset, records, records
FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[])
    AS u(topic, partition, first_offset, last_offset, records)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
    first_offset = EXCLUDED.first_offset, last_offset = EXCLUDED.last_offset,
    records = EXCLUDED.records, records_total = t.records_total + EXCLUDED.records,
    updated_at = now()
"""


class PostgresUnitOfWork:
    """A transaction on the service's pool; tracking in `<schema>.consumer_tracking`.

    The tracking table is the runtime's, the same in every service schema, so the runtime
    creates it (`ensure`) instead of each service repeating a numbered migration for it.
    """

    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str) -> None:
        if not schema.isidentifier():
            raise ValueError(f"invalid schema name {schema!r}")
        self._pool = pool
        self._schema = schema
        self._track = TRACK.format(schema=schema)

    async def ensure(self) -> None:
        await self._pool().execute(TRACKING_TABLE.format(schema=self._schema))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool().acquire() as conn, conn.transaction():
            yield conn

    async def track(self, tx: asyncpg.Connection, group: str, spans: Sequence[Range]) -> None:
        if spans:
            await tx.execute(
                self._track,
                group,
                [s.topic for s in spans],
                [s.partition for s in spans],
                [s.first for s in spans],
                [s.last for s in spans],
                [s.records for s in spans],
            )


class StoreTracks:
    """For a store that writes its work and its tracking record in one transaction of its own
    (pricing: insert-only tracking rows, so concurrent chunk writes never queue on one row):
    the pipeline opens no transaction and writes no tracking record itself, except through
    `idle` for a chunk with nothing to store (every record dead-lettered)."""

    def __init__(self, idle: Callable[[Sequence[Range]], Awaitable[Any]] | None = None) -> None:
        self._idle = idle

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield None

    async def track(self, tx: None, group: str, spans: Sequence[Range]) -> None:
        return None

    async def track_idle(self, tx: None, group: str, spans: Sequence[Range]) -> None:
        if self._idle is not None:
            await self._idle(spans)


class InMemoryUnitOfWork:
    """A unit of work for handler unit tests: `tx` is a list of writes that counts only when
    the transaction ends without an exception (`committed`, `tracked`)."""

    def __init__(self) -> None:
        self.committed: list[Any] = []
        self.tracked: list[tuple[str, Range]] = []
        self.transactions = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[list]:
        tx: list = []
        yield tx
        self.transactions += 1
        for write in tx:
            if isinstance(write, tuple) and write and write[0] == "__track__":
                self.tracked.append((write[1], write[2]))
            else:
                self.committed.append(write)

    async def track(self, tx: list, group: str, spans: Sequence[Range]) -> None:
        tx.extend(("__track__", group, s) for s in spans)


class TrackAfter:
    """For work that keeps its own transactions and may take long (the remediation executor's
    cloud calls): no transaction is held open during the work; the tracking record is written
    right after it, in a short transaction of `uow`."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield None

    async def track(self, tx: None, group: str, spans: Sequence[Range]) -> None:
        async with self._uow.transaction() as own:
            await self._uow.track(own, group, spans)
