"""The consume pipeline every subscriber runs on.

One consumed batch goes: decode and validate at the edge (a record that does not decode is a
dead letter, one record at a time) -> the service's work and a tracking record (group, topic,
partition, offset range) in ONE database transaction -> the outgoing records published ->
offsets committed (manual commit, auto-commit off) only after both.

Failures:
- transient infrastructure errors (database or broker away, starting up, buffer full) are
  retried in place with capped exponential backoff; nothing is dead-lettered or committed
  meanwhile, and health says `retrying`;
- a data error from the store (asyncpg `DataError`, `IntegrityConstraintViolationError`, ...:
  a NUL in a string, a numeric overflow) splits the batch in halves until the culprit is alone:
  it is dead-lettered with the database's reason and the rest is stored;
- any other error is retried a few times; if it persists, the batch's partitions are retried
  one by one, and each partition that still fails is paused (not skipped) and rewound to the
  batch's first offset, health says `stalled`, and it is tried again after `stall_retry_s`.

Outgoing events: republished after every (re)delivery instead of a transactional outbox.
A redelivered batch is worked again (idempotently: every store upserts by the event's identity)
and yields its outgoing records again, which are published again, duplicates included; every
downstream consumer is idempotent on the event identity (`x_RecordId`, `anomaly_id`,
`command_id`), so duplicates cost nothing. So a crash after the store commit and before the
publish, or after the publish and before the offset commit, ends with every record stored once
downstream: the offsets were not committed, the batch comes again, is stored again (no change)
and published again. This keeps pricing's hot path at one write per record (an outbox would
write every priced record twice). A service whose work is not a pure function of its input
(anomaly's detections, remediation's plans) keeps its own outbox and passes its relay as
`relay`, called after each commit and before the offsets are committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from finfocus import metrics
from finfocus.broker import Envelope, OutgoingRecord, envelope_dead_letter
from finfocus.faults import (
    DATA_ERROR_TYPES,
    TRANSIENT_NAMES,
    TRANSIENT_TYPES,
    RetryPolicy,
    is_data_error,
    is_transient,
)
from finfocus.health import PartitionHealth
from finfocus.telemetry import redact
from finfocus.tracking import (
    InMemoryUnitOfWork,
    PostgresUnitOfWork,
    Range,
    StoreTracks,
    TrackAfter,
    UnitOfWork,
    ranges,
)
from schemas.deadletter import DeadLetterV1

__all__ = [
    "DATA_ERROR_TYPES",
    "TRANSIENT_NAMES",
    "TRANSIENT_TYPES",
    "Decoded",
    "Done",
    "InMemoryUnitOfWork",
    "Pipeline",
    "PostgresUnitOfWork",
    "Range",
    "RetryPolicy",
    "Stalled",
    "StoreTracks",
    "TrackAfter",
    "UnitOfWork",
    "is_data_error",
    "is_transient",
    "ranges",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Decoded(Generic[T]):
    """A decoded batch: the items to work on, the consumed record behind each, dead letters."""

    items: list[T] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    letters: list[DeadLetterV1] = field(default_factory=list)


@dataclass
class Done:
    """What the work returns: records to publish once committed, and items the domain refused
    as bad data (index in the items it was given -> reason), which become dead letters."""

    outgoing: list[tuple[str, OutgoingRecord]] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


class Stalled(Exception):
    """The work kept failing with an error that is neither transient nor bad data."""


Work = Callable[[Any, list], Awaitable[Done | None]]
Publish = Callable[[str, list[OutgoingRecord]], Awaitable[Any]]
PublishLetters = Callable[[list[DeadLetterV1]], Awaitable[Any]]


def as_envelope(record: Any) -> Envelope:
    """An aiokafka ConsumerRecord (or an Envelope) as an Envelope (headers as a dict)."""
    if isinstance(record, Envelope):
        return record
    headers = record.headers or ()
    return Envelope(
        value=record.value or b"",
        key=record.key,
        headers=headers if isinstance(headers, dict) else {k: v for k, v in headers},
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


class Pipeline:
    """The consume pipeline of one subscriber (see the module docstring).

    Give either `decode` (one record -> an item; any exception makes it a dead letter reading
    `invalid <label>: <reason>`) or `decode_batch` (consumed records -> `Decoded`), and `work`
    (transaction, items -> `Done` or None). `data_errors`: more exception types of the work
    that mean "this record is bad data" (bisected and dead-lettered like the store's).
    """

    def __init__(
        self,
        *,
        service: str,
        group: str,
        uow: UnitOfWork,
        work: Work,
        publish: Publish,
        publish_letters: PublishLetters,
        decode: Callable[[Envelope], Any] | None = None,
        decode_batch: Callable[[Sequence[Any]], Awaitable[Decoded]] | None = None,
        label: str = "record",
        chunk: int | None = None,
        writers: int = 1,
        relay: Callable[[], Awaitable[Any]] | None = None,
        after: Callable[[list], Any] | None = None,
        retry: RetryPolicy | None = None,
        data_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        if (decode is None) == (decode_batch is None):
            raise ValueError("give exactly one of decode and decode_batch")
        self.service = service
        self.group = group
        self.uow = uow
        self.work = work
        self.publish = publish
        self.publish_letters = publish_letters
        self.decode = decode
        self.decode_batch = decode_batch
        self.label = label
        self.chunk = chunk
        self.writers = writers
        self.relay = relay
        self.after = after
        self.retry = retry or RetryPolicy()
        self.data_errors = data_errors
        self.health: dict[tuple[str, int], PartitionHealth] = {}
        self.consumer: Any = None
        #: the FastStream subscriber (ServiceRuntime.consume), whose consumer health reads
        self.subscriber: Any = None
        self._resume_handles: dict[tuple[str, int], asyncio.TimerHandle] = {}

    # -- health -----------------------------------------------------------------------
    def _part(self, topic: str, partition: int) -> PartitionHealth:
        key = (topic, partition)
        part = self.health.get(key)
        if part is None:
            part = self.health[key] = PartitionHealth(self.group, topic, partition)
        return part

    def _failing(self, spans: Sequence[Range], exc: BaseException, *, transient: bool) -> None:
        now = time.time()
        text = redact(f"{type(exc).__name__}: {exc}")[:500]  # the health file is read by status
        for s in spans:
            part = self._part(s.topic, s.partition)
            part.last_error, part.last_error_at = text, now
            if transient and part.retrying_since is None:
                part.retrying_since = now

    def _recovered(self, spans: Sequence[Range]) -> None:
        for s in spans:
            part = self._part(s.topic, s.partition)
            part.retrying_since = None

    def partitions(self) -> list[PartitionHealth]:
        """Health of every partition this pipeline consumes, with the log end as last fetched."""
        consumer = self.consumer
        assigned: set = set()
        if consumer is not None and hasattr(consumer, "assignment"):
            try:
                assigned = set(consumer.assignment())
            except Exception:  # noqa: BLE001 - a stopping consumer has no assignment
                assigned = set()
        for tp in assigned:
            part = self._part(tp.topic, tp.partition)
            try:
                end = consumer.highwater(tp)
            except Exception:  # noqa: BLE001
                end = None
            if end is not None:
                part.log_end = end
        if consumer is None or not hasattr(consumer, "assignment"):
            return list(self.health.values())
        # partitions a rebalance gave to another process are theirs to report
        owned = {(tp.topic, tp.partition) for tp in assigned}
        return [p for key, p in self.health.items() if key in owned]

    async def refresh(self) -> None:
        """Learn the committed offset of partitions assigned but not yet committed by this
        process (after a restart), so their lag is not counted from zero."""
        consumer = self.consumer
        if consumer is None or not hasattr(consumer, "committed"):
            return
        try:
            assigned = list(consumer.assignment())
        except Exception:  # noqa: BLE001
            return
        for tp in assigned:
            part = self._part(tp.topic, tp.partition)
            if part.committed is not None or part.committed_unknown:
                continue
            try:
                part.committed = await asyncio.wait_for(consumer.committed(tp), 2.0)
            except Exception:  # noqa: BLE001 - a broker that cannot tell: our own commits only
                part.committed_unknown = True

    # -- the batch --------------------------------------------------------------------
    async def handle(self, records: Sequence[Any], consumer: Any = None) -> None:
        """Run one consumed batch through the pipeline; returns once its offsets are committed
        (or its failing partitions paused)."""
        if consumer is not None:
            self.consumer = consumer
        records = list(records)
        if not records:
            return
        started = time.perf_counter()
        try:
            await self._handle(records)
            metrics.BATCH_SECONDS.labels(self.service, records[0].topic).observe(
                time.perf_counter() - started
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # a failure outside the work (decoding, a non-transient publish): the batch is not
            # committed, and its partitions are rewound and paused so later batches cannot
            # commit past it
            logger.exception("consume pipeline failed", extra={"fields": {"service": self.service}})
            spans = ranges(records)
            self._failing(spans, exc, transient=False)
            await self._commit(records, {(s.topic, s.partition) for s in spans})
            return
        if self.after is not None:
            self.after(records)

    async def _handle(self, records: list) -> None:
        writers = asyncio.Semaphore(self.writers)
        tasks: list[asyncio.Task] = []
        stalled: set[tuple[str, int]] = set()
        # counted once the batch commits: a batch that fails and comes back publishes its
        # letters again (at least once), but the metric counts dead-lettered records
        letters: list = []
        step = self.chunk or len(records)
        try:
            for start in range(0, len(records), step):
                part = records[start : start + step]
                decoded = await self._decode(part)
                if decoded.letters:
                    await self._transient_retry(ranges(part), self.publish_letters, decoded.letters)
                    letters.extend(decoded.letters)
                tasks.append(
                    asyncio.create_task(self._apply(decoded, part, writers, stalled, letters))
                )
                await asyncio.sleep(0)  # let the write start before decoding the next chunk
        finally:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self.relay is not None:
            await self._transient_retry(ranges(records), self.relay)
        await self._commit(records, stalled)
        if letters:
            metrics.dead_lettered(self.service, letters)

    async def _decode(self, records: Sequence[Any]) -> Decoded:
        if self.decode_batch is not None:
            return await self.decode_batch(records)
        out: Decoded = Decoded()
        for record in records:
            env = as_envelope(record)
            try:
                out.items.append(self.decode(env))  # type: ignore[misc]
                out.sources.append(env)
            except Exception as exc:  # noqa: BLE001 - whatever it is, it is this record's fault
                out.letters.append(
                    envelope_dead_letter(env, f"invalid {self.label}: {exc}", service=self.service)
                )
        return out

    async def _apply(
        self,
        decoded: Decoded,
        records: list,
        writers: asyncio.Semaphore,
        stalled: set[tuple[str, int]],
        letters: list,
    ) -> None:
        async with writers:
            spans = ranges(records)
            try:
                await self._store_and_publish(decoded.items, decoded.sources, spans, letters)
            except Stalled:
                # one partition at a time: those that work go on, the others pause
                by_partition: dict[tuple[str, int], tuple[list, list]] = {}
                for item, source in zip(decoded.items, decoded.sources, strict=True):
                    items, sources = by_partition.setdefault(
                        (source.topic, source.partition), ([], [])
                    )
                    items.append(item)
                    sources.append(source)
                for (topic, partition), (items, sources) in by_partition.items():
                    own = [s for s in spans if (s.topic, s.partition) == (topic, partition)]
                    try:
                        await self._store_and_publish(items, sources, own, letters)
                    except Stalled:
                        stalled.add((topic, partition))

    async def _store_and_publish(
        self, items: list, sources: list, spans: list[Range], counted: list
    ) -> None:
        outgoing, letters = await self._store(items, sources, spans)
        if letters:
            await self._transient_retry(spans, self.publish_letters, letters)
            counted.extend(letters)
        by_topic: dict[str, list[OutgoingRecord]] = {}
        for topic, record in outgoing:
            by_topic.setdefault(topic, []).append(record)
        for topic, records in by_topic.items():
            await self._transient_retry(spans, self.publish, topic, records)

    async def _store(
        self, items: list, sources: list, spans: list[Range]
    ) -> tuple[list[tuple[str, OutgoingRecord]], list[DeadLetterV1]]:
        failures = attempt = 0
        while True:
            try:
                began = time.perf_counter()
                async with self.uow.transaction() as tx:
                    if items:
                        done = await self.work(tx, items)
                        await self.uow.track(tx, self.group, spans)
                    else:
                        done = None
                        await getattr(self.uow, "track_idle", self.uow.track)(tx, self.group, spans)
                self._recovered(spans)
                if items:
                    self._stored(
                        sources, spans, (done.refused if done else {}), time.perf_counter() - began
                    )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    self._failing(spans, exc, transient=True)
                    metrics.count(self.service, "retried", (s.topic for s in sources))
                    logger.warning(
                        "transient error, retrying",
                        extra={
                            "fields": {
                                "service": self.service,
                                "error": repr(exc)[:300],
                                "attempt": attempt,
                            }
                        },
                    )
                    await asyncio.sleep(self.retry.delay(attempt))
                    attempt += 1
                    continue
                if items and (
                    is_data_error(exc) or (self.data_errors and isinstance(exc, self.data_errors))
                ):
                    self._recovered(spans)
                    if len(items) == 1:
                        reason = f"cannot store record: {type(exc).__name__}: {exc}"
                        return [], [self._letter(sources[0], reason)]
                    mid = len(items) // 2
                    out_a, letters_a = await self._store(items[:mid], sources[:mid], spans)
                    out_b, letters_b = await self._store(items[mid:], sources[mid:], spans)
                    return out_a + out_b, letters_a + letters_b
                failures += 1
                self._failing(spans, exc, transient=False)
                logger.exception(
                    "consumer work failed",
                    extra={
                        "fields": {
                            "service": self.service,
                            "group": self.group,
                            "failures": failures,
                        }
                    },
                )
                if failures >= self.retry.max_failures:
                    raise Stalled(str(exc)) from exc
                await asyncio.sleep(self.retry.delay(failures))
        done = done or Done()
        letters = [self._letter(sources[i], reason) for i, reason in sorted(done.refused.items())]
        return done.outgoing, letters

    def _stored(
        self, sources: list, spans: list[Range], refused: dict[int, str], seconds: float
    ) -> None:
        """Count the records a committed transaction took: redelivered ones below an offset
        already committed are duplicates (the idempotent store made them no-ops)."""
        for topic in {s.topic for s in spans}:
            metrics.DB_WRITE_SECONDS.labels(self.service, topic).observe(seconds)
        if (
            not refused
            and len(sources) == sum(s.records for s in spans)
            and all(
                (part := self.health.get((s.topic, s.partition))) is None
                or part.committed is None
                or part.committed <= s.first
                for s in spans
            )
        ):
            # the usual batch: every record new, none refused; counted per partition, not per record
            for s in spans:
                metrics.RECORDS.labels(self.service, s.topic, "stored").inc(s.records)
            return
        stored: list[str] = []
        duplicate: list[str] = []
        for i, source in enumerate(sources):
            if i in refused:
                continue
            part = self.health.get((source.topic, source.partition))
            seen = (
                part is not None and part.committed is not None and source.offset < part.committed
            )
            (duplicate if seen else stored).append(source.topic)
        metrics.count(self.service, "stored", stored)
        metrics.count(self.service, "duplicate", duplicate)

    def _letter(self, source: Any, reason: str) -> DeadLetterV1:
        return envelope_dead_letter(as_envelope(source), reason, service=self.service)

    async def _transient_retry(
        self, spans: Sequence[Range], op: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        attempt = 0
        while True:
            try:
                result = await op(*args)
                if attempt:
                    self._recovered(spans)
                return result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._failing(spans, exc, transient=True)
                metrics.count(
                    self.service, "retried", (s.topic for s in spans for _ in range(s.records))
                )
                logger.warning(
                    "transient error, retrying",
                    extra={
                        "fields": {
                            "service": self.service,
                            "error": repr(exc)[:300],
                            "attempt": attempt,
                        }
                    },
                )
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1

    # -- offsets ----------------------------------------------------------------------
    async def _commit(self, records: list, stalled: set[tuple[str, int]]) -> None:
        spans = ranges(records)
        consumer = self.consumer
        offsets: dict[Any, int] = {}
        from aiokafka import TopicPartition

        for s in spans:
            key = (s.topic, s.partition)
            tp = TopicPartition(s.topic, s.partition)
            if key in stalled:
                self._pause(tp, s.first)
                continue
            part = self._part(*key)
            if part.paused:
                part.paused = False
                logger.info(
                    "partition resumed",
                    extra={"fields": {"topic": s.topic, "partition": s.partition}},
                )
            offsets[tp] = s.last + 1
        if not offsets or consumer is None:
            return
        for attempt in range(8):
            try:
                try:
                    await consumer.commit(offsets)
                except TypeError:  # FastStream's test consumer commits its positions only
                    await consumer.commit()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                if is_transient(exc) and attempt < 7:
                    self._failing(spans, exc, transient=True)
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                # a rebalance took the partitions: whoever has them now gets the batch again
                # (stored idempotently), so nothing is lost by giving up here
                logger.warning(
                    "offset commit failed",
                    extra={"fields": {"service": self.service, "error": repr(exc)}},
                )
                return
        for tp, offset in offsets.items():
            part = self._part(tp.topic, tp.partition)
            part.committed = offset
            part.retrying_since = None

    def _pause(self, tp: Any, first: int) -> None:
        part = self._part(tp.topic, tp.partition)
        part.paused = True
        consumer = self.consumer
        logger.error(
            "partition paused: its records keep failing",
            extra={
                "fields": {
                    "service": self.service,
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "error": part.last_error,
                }
            },
        )
        if consumer is None or not hasattr(consumer, "pause"):
            return
        try:
            consumer.pause(tp)
            consumer.seek(tp, first)
        except Exception:  # noqa: BLE001 - no longer assigned: the next owner starts from the commit
            logger.warning("could not pause partition", exc_info=True)
            return
        key = (tp.topic, tp.partition)
        old = self._resume_handles.pop(key, None)
        if old is not None:
            old.cancel()

        def resume() -> None:
            self._resume_handles.pop(key, None)
            try:
                consumer.resume(tp)
            except Exception:  # noqa: BLE001
                logger.warning("could not resume partition", exc_info=True)

        self._resume_handles[key] = asyncio.get_running_loop().call_later(
            self.retry.stall_retry_s, resume
        )

    async def relay_pending(self) -> None:
        """Run the outbox relay once (at start-up), retrying transient errors."""
        if self.relay is None:
            return
        try:
            await self._transient_retry([], self.relay)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next batch relays again
            logger.exception("outbox relay failed", extra={"fields": {"service": self.service}})

    def close(self) -> None:
        for handle in self._resume_handles.values():
            handle.cancel()
        self._resume_handles.clear()
