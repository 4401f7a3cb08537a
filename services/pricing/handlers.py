"""The pricing subscriber: raw-billing batch -> dead letters, stored lines, priced-resources."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from finfocus.broker import OutgoingRecord
from finfocus.consume import Decoded, Done, StoreTracks, ranges
from schemas.deadletter import DeadLetterV1
from schemas.pricing import PricedRecordV1
from schemas.topics import Topics
from services.pricing.batch import BatchOutcome, BatchPricer
from services.pricing.domain import ScopeVersions
from services.pricing.store import Position, PricingStore

logger = logging.getLogger(__name__)

GROUP_ID = "finfocus-pricing"
#: records priced per step; a step's write overlaps the pricing of the next one
CHUNK = 2500
#: concurrent chunk writes
WRITERS = 2


async def _undecoded(message) -> list[bytes]:
    """Keep the batch as bytes: records are parsed one by one in `BatchPricer`, so a bad one
    becomes a dead letter (FastStream's default decoder would JSON-decode every record first)."""
    return message.body


async def _lean_batch(message, original_parser):
    """FastStream's batch parser, minus the per-record header copies: the telemetry middleware
    walks them twice per batch (span links, baggage), which cost more than validating the
    records. Each record's own trace is continued by a per-record span in `BatchPricer`."""
    parsed = await original_parser(message)
    parsed.batch_headers = []
    return parsed


@dataclass(slots=True)
class _Line:
    """One priced line of a chunk: what the store writes, its owner, its outgoing record."""

    line: tuple[str, str]
    owner: tuple[str, str]
    outgoing: OutgoingRecord
    outcome: BatchOutcome


def _positions(records) -> list[Position]:
    return _spans_as_positions(ranges(records))


def _spans_as_positions(spans) -> list[Position]:
    return [Position(s.topic, s.partition, s.last, s.records, s.first) for s in spans]


def register_handlers(runtime, store: PricingStore, pricer: BatchPricer) -> None:
    """Subscribe the pricing handler (on the runtime's consume pipeline)."""
    settings = runtime.settings

    # A chunk's write overlaps the pricing of the next chunk, and up to WRITERS writes run at
    # once (PostgreSQL does the column extraction, on its own cores). Chunks with restated
    # scopes write alone: they update shared scope rows and prune older versions.
    # Only a chunk bringing a scope version this process has not stored yet takes that path;
    # the other chunks of an import share their scopes' stored versions.
    writers = asyncio.Semaphore(WRITERS)
    scoped = asyncio.Lock()
    known = ScopeVersions()

    async def price(records) -> Decoded:
        outcome = await pricer.process(records)
        items = [
            _Line(line, owner, out, outcome)
            for line, owner, out in zip(
                outcome.lines, outcome.owners, outcome.outgoing, strict=True
            )
        ]
        return Decoded(items, [outcome.origins[line[0]] for line in outcome.lines], outcome.letters)

    async def write(_tx, items: list[_Line]) -> Done:
        # the store writes the lines and their tracking record in one transaction of its own
        # (insert-only tracking rows: concurrent chunk writes never wait on one row)
        outcome = items[0].outcome  # the pipeline never mixes chunks
        whole = len(items) == len(outcome.lines)
        positions = (
            outcome.positions if whole else _positions([outcome.origins[i.line[0]] for i in items])
        )
        lines, owners = [i.line for i in items], [i.owner for i in items]
        if known.fresh(outcome.scopes):
            async with scoped:
                for _ in range(WRITERS):
                    await writers.acquire()
                try:
                    refused = await store.store_batch(
                        lines, positions, sorted(outcome.scopes), owners
                    )
                    known.stored(outcome.scopes)
                finally:
                    for _ in range(WRITERS):
                        writers.release()
        else:
            async with writers:
                refused = await store.store_batch(lines, positions, owners=owners)
        # record ids another account owns: dead letters, not priced records
        return Done(
            outgoing=[
                (Topics.PRICED_RESOURCES, i.outgoing) for i in items if i.line[0] not in refused
            ],
            refused={n: refused[i.line[0]] for n, i in enumerate(items) if i.line[0] in refused},
        )

    # documented in the AsyncAPI document; records are sent through runtime.publisher
    runtime.publishes(
        Topics.PRICED_RESOURCES,
        PricedRecordV1,
        "PricedRecord v1 per stored line; key ProviderName:SubAccountId; per-record traceparent",
    )
    runtime.publishes(
        Topics.dlq(Topics.RAW_BILLING),
        DeadLetterV1,
        "Records that are not a valid BillingRecord v1, with the reason",
    )
    runtime.consume(
        Topics.RAW_BILLING,
        group=GROUP_ID,
        label="BillingRecord",
        decode_batch=price,
        work=write,
        chunk=CHUNK,
        writers=WRITERS,
        uow=StoreTracks(idle=lambda spans: store.store_batch([], _spans_as_positions(spans))),
        title="raw-billing:BillingRecord",
        description="Batches of BillingRecord v1 (JSON), validated one by one: billed rows pass "
        "through, usage rows are priced (plugins, specs, none), invalid ones are dead-lettered",
        max_records=getattr(settings, "pricing_batch_max_records", 10000),
        parser=_lean_batch,
        decoder=_undecoded,
        # whole batches per fetch: the 1 MiB default per partition is ~2,000 records, and the
        # embedded broker answers a partly empty fetch only after fetch_max_wait_ms
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=50,
    )
