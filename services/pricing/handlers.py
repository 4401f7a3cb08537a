"""The pricing subscriber: raw-billing batch -> dead letters, stored lines, priced-resources."""

from __future__ import annotations

import asyncio
import logging

from faststream.kafka.annotations import KafkaMessage

from finfocus.broker import consumer_options, publish_dead_letters
from finfocus.telemetry import log_fields
from schemas.deadletter import DeadLetterV1
from schemas.pricing import PricedRecordV1
from schemas.topics import Topics
from services.pricing.batch import BatchOutcome, BatchPricer
from services.pricing.domain import ScopeVersions
from services.pricing.store import PricingStore

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


def register_handlers(runtime, store: PricingStore, pricer: BatchPricer) -> None:
    """Subscribe the pricing handler on `runtime.broker`."""
    settings = runtime.settings

    # A chunk's write overlaps the pricing of the next chunk, and up to WRITERS writes run at
    # once (PostgreSQL does the column extraction, on its own cores). Chunks with restated
    # scopes write alone: they update shared scope rows and prune older versions.
    # Only a chunk bringing a scope version this process has not stored yet takes that path;
    # the other chunks of an import share their scopes' stored versions.
    writers = asyncio.Semaphore(WRITERS)
    scoped = asyncio.Lock()
    known = ScopeVersions()

    async def commit(outcome: BatchOutcome) -> None:
        # the lines and the tracking record in one transaction, then the priced records
        if known.fresh(outcome.scopes):
            async with scoped:
                for _ in range(WRITERS):
                    await writers.acquire()
                try:
                    refused = await store.store_batch(
                        outcome.lines, outcome.positions, sorted(outcome.scopes), outcome.owners
                    )
                    known.stored(outcome.scopes)
                finally:
                    for _ in range(WRITERS):
                        writers.release()
        else:
            async with writers:
                refused = await store.store_batch(outcome.lines, outcome.positions, owners=outcome.owners)
        if refused:  # record ids another account owns: dead letters, not priced records
            await publish_dead_letters(runtime.broker, outcome.withdraw(refused))
        await runtime.publisher.publish_batched(Topics.PRICED_RESOURCES, outcome.outgoing)
        logger.debug(
            "batch priced",
            extra=log_fields(stored=len(outcome.lines), dead=len(outcome.letters), unpriced=outcome.unpriced),
        )

    # documented in the AsyncAPI document; records are sent through runtime.publisher
    runtime.publishes(
        Topics.PRICED_RESOURCES, PricedRecordV1,
        "PricedRecord v1 per stored line; key ProviderName:SubAccountId; per-record traceparent",
    )
    runtime.publishes(
        Topics.dlq(Topics.RAW_BILLING), DeadLetterV1,
        "Records that are not a valid BillingRecord v1, with the reason",
    )

    @runtime.broker.subscriber(
        Topics.RAW_BILLING,
        batch=True,
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
        **consumer_options(settings, group_id=GROUP_ID),
    )
    async def price_raw_billing(message: KafkaMessage) -> None:
        raw = message.raw_message  # the ConsumerRecords themselves: no per-record copies
        batch = raw if isinstance(raw, tuple | list) else (raw,)
        writes: list[asyncio.Task] = []
        try:
            for start in range(0, len(batch), CHUNK):
                outcome = await pricer.process(batch[start : start + CHUNK])
                if outcome.letters:
                    await publish_dead_letters(runtime.broker, outcome.letters)
                writes.append(asyncio.create_task(commit(outcome)))
                await asyncio.sleep(0)  # let the write start before pricing the next chunk
        finally:
            # every write finishes (or fails) before the batch is acknowledged: a failure
            # raises here and the whole batch is redelivered (upserts make that harmless)
            results = await asyncio.gather(*writes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
