"""One consumed batch of raw-billing records -> dead letters, priced lines, outgoing records.

Validation happens here, at the edge: a record that does not parse or validate becomes a dead
letter with the reason; nothing raises for bad data. Pricing decisions are the domain's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import ValidationError

from finfocus.broker import Envelope, OutgoingRecord, envelope_dead_letter
from finfocus.signing import SigningKeys, UntrustedMessage, verify
from finfocus.telemetry import start_record_span, trace_headers
from schemas.deadletter import DeadLetterV1
from schemas.ingest import BillingRecordV1
from schemas.topics import Topics, schema_headers
from services.pricing import domain, fastpath
from services.pricing.store import Position

logger = logging.getLogger(__name__)

#: columns pricing writes; an input that already has one takes the careful path
_PRICING_COLUMNS = fastpath.PRICING_COLUMNS
_PRICED_HEADERS = [(k, v.encode()) for k, v in schema_headers("PricedRecord").items()]
#: the only issuer that may set a record's billing scope and version
SCOPE_ISSUERS = ("ingest",)

#: async callable: usage lines -> per line, the plugin quotes in plugin order
QuoteSource = Callable[[Sequence[domain.UsageLine]], Awaitable[list[list[domain.Quote | None]]]]


@dataclass
class BatchOutcome:
    lines: list[tuple[str, str]] = field(default_factory=list)
    #: (ProviderName, BillingAccountId) of each line: the scope of its record id
    owners: list[tuple[str, str]] = field(default_factory=list)
    outgoing: list[OutgoingRecord] = field(default_factory=list)
    letters: list[DeadLetterV1] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    #: billing scope -> the highest x_BillingScopeVersion among the batch's records (0: none)
    scopes: dict[str, int] = field(default_factory=dict)
    unpriced: int = 0
    #: record id -> the consumed record it came from (for dead letters after the write; the
    #: consume pipeline reads it too)
    origins: dict[str, object] = field(default_factory=dict)
    service: str = "pricing"

    def note_scope(self, scope: str, version: int | None) -> None:
        domain.keep_highest(self.scopes, scope, version)

    def withdraw(self, refused: Mapping[str, str]) -> list[DeadLetterV1]:
        """Take the lines the store refused (record id -> reason) out of the outgoing records
        and return their dead letters: a refused line is never announced as priced."""
        if not refused:
            return []
        keep = [i for i, (record_id, _) in enumerate(self.lines) if record_id not in refused]
        self.lines = [self.lines[i] for i in keep]
        self.owners = [self.owners[i] for i in keep]
        self.outgoing = [self.outgoing[i] for i in keep]
        return [
            _dead_letter(self.origins[record_id], reason, self.service)
            for record_id, reason in refused.items()
            if record_id in self.origins
        ]


def describe(exc: ValidationError) -> str:
    """A one-line reason from a pydantic error: `field: message; ...`."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def usage_line(rec: BillingRecordV1) -> domain.UsageLine:
    return domain.UsageLine(
        provider=rec.ProviderName,
        service=rec.ServiceName,
        currency=rec.BillingCurrency,
        quantity=rec.PricingQuantity
        if rec.PricingQuantity is not None and rec.ConsumedQuantity is None
        else rec.ConsumedQuantity,
        unit=rec.ConsumedUnit or rec.PricingUnit,
        sku=rec.SkuId,
        resource_type=rec.ResourceType,
        region=rec.RegionId,
        billed_cost=rec.BilledCost,
    )


class BatchPricer:
    """Parses, prices and serialises one batch; the I/O around it stays in the handler."""

    def __init__(
        self,
        tracer,
        service: str = "pricing",
        *,
        specs: Callable[[], domain.SpecBook] | None = None,
        quotes: QuoteSource | None = None,
        keys: SigningKeys | None = None,
    ) -> None:
        self._tracer = tracer
        self._service = service
        self._keys = keys if keys is not None else SigningKeys()
        self._specs = specs or (lambda: domain.SpecBook())
        self._quotes = quotes

    async def process(self, batch: Sequence) -> BatchOutcome:  # noqa: C901 - the batch pipeline (parse, dedupe per account, price, store, publish) in one transaction scope
        """Price a batch of consumed records: aiokafka ConsumerRecords (headers as pairs) or
        `finfocus.broker.Envelope`s (headers as a dict)."""
        out = BatchOutcome(service=self._service)
        # record id -> (ProviderName, BillingAccountId) of the batch's records: one id under
        # two accounts would otherwise let the later row replace the other account's line
        owners: dict[str, tuple[str, str]] = {}
        priced_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        # (consumed record, its model or None when the fast path took it, its trace group)
        parsed: list[tuple[Any, BillingRecordV1 | None, _TraceGroup | None]] = []
        fast: dict[int, tuple[str, str | None, bytes, dict]] = {}
        quick = fastpath.parse
        usage: list[tuple[int, domain.UsageLine]] = []
        last: dict[tuple[str, int], list[int]] = {}
        validate = BillingRecordV1.model_validate_json
        # Records that carry a trace get a span in that trace, one per distinct trace context:
        # an import's chunk shares one (a span per record took nearly half of pricing's CPU
        # on large imports). Records without one share this batch's span.
        # The batch span starts its own trace: the consumer span around this call follows the
        # first record's trace, which the other records of the batch do not belong to.
        consumer_span = trace.get_current_span().get_span_context()
        batch_span = self._tracer.start_span(
            "pricing.batch",
            context=otel_context.Context(),
            links=[trace.Link(consumer_span)] if consumer_span.is_valid else None,
            attributes={"finfocus.records": len(batch)},
        )
        batch_headers = trace_headers(batch_span) + _PRICED_HEADERS
        groups: dict[tuple, _TraceGroup] = {}
        for env in batch:
            pos = last.get((env.topic, env.partition))
            if pos is None:
                last[(env.topic, env.partition)] = [env.offset, 1, env.offset]
            else:
                pos[0] = max(pos[0], env.offset)
                pos[1] += 1
                pos[2] = min(pos[2], env.offset)
            span = None
            if env.headers:
                headers = env.headers if isinstance(env.headers, dict) else dict(env.headers)
                if "traceparent" in headers:
                    context = (headers["traceparent"], headers.get("tracestate"))
                    span = groups.get(context)
                    if span is None:
                        span = groups[context] = _TraceGroup(
                            start_record_span(self._tracer, "pricing.price", headers)
                        )
                    span.records += 1
            try:
                canonical = quick(env.value or b"")
            except Exception:  # noqa: BLE001 - never the batch's failure: the model decides
                logger.exception("fast path failed on a record; the model decides")
                canonical = None
            if canonical is not None:
                columns = canonical[3]
                problem = None
                if canonical[1] is not None or "x_BillingScopeVersion" in columns:
                    problem = self._unsigned_scope(env)
                problem = problem or _owner_clash(
                    owners, canonical[0], columns["ProviderName"], columns["BillingAccountId"]
                )
                if problem:
                    out.letters.append(self._letter(env, problem))
                    if span is not None:
                        span.dead_letters += 1
                    continue
                fast[len(parsed)] = canonical
                parsed.append((env, None, span))
                continue
            try:
                rec = validate(env.value or b"")
                rec.with_record_id()
                problem = None
                if rec.x_BillingScope is not None or rec.x_BillingScopeVersion is not None:
                    problem = self._unsigned_scope(env)
                problem = problem or _owner_clash(
                    owners, rec.x_RecordId, rec.ProviderName, rec.BillingAccountId
                )
            except ValidationError as exc:
                problem = describe(exc)
            except Exception as exc:  # noqa: BLE001 - anything else is still this record's fault
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                out.letters.append(self._letter(env, problem))
                if span is not None:
                    span.dead_letters += 1
                continue
            if rec.BilledCost is None:
                usage.append((len(parsed), usage_line(rec)))
            parsed.append((env, rec, span))
        out.positions = [Position(t, p, o, n, first) for (t, p), (o, n, first) in last.items()]

        decisions: dict[int, domain.PriceDecision] = {}
        if usage:
            specs = self._specs()
            quotes: list[list[domain.Quote | None]] = [[] for _ in usage]
            if self._quotes is not None:
                try:
                    quotes = await self._quotes([u for _, u in usage])
                except Exception:  # noqa: BLE001 - plugins failing must not stop pricing
                    logger.exception("plugin quotes failed; pricing from specs")
            for (i, line), q in zip(usage, quotes, strict=True):
                decisions[i] = domain.decide(line, q, specs)

        stamp = f',"x_PriceSource":"billed","x_PricedAt":"{priced_at}"}}'.encode()
        dumps = orjson.dumps
        for i, (env, model, span) in enumerate(parsed):
            try:
                if model is None:
                    # canonical billed record (fastpath.parse): its columns, already in the
                    # model's order and spelling, plus the two pricing columns
                    record_id, scope, key, columns = fast[i]
                    body = dumps(columns)[:-1] + stamp
                    out.lines.append((record_id, body.decode()))
                    out.origins[record_id] = env
                    out.owners.append((columns["ProviderName"], columns["BillingAccountId"]))
                    if scope:
                        out.note_scope(scope, columns.get("x_BillingScopeVersion"))
                    out_headers = span.stored(record_id) if span is not None else batch_headers
                    out.outgoing.append((env.key or key, body, out_headers))
                    continue
                rec = model
                decision = decisions.get(i)
                extra = rec.__pydantic_extra__
                if extra and not _PRICING_COLUMNS.isdisjoint(extra):
                    body = self._priced_body(rec, decision, priced_at, out)  # rare: re-priced input
                elif decision is None:
                    # hot path (billed rows): serialise once and append the two pricing columns
                    if rec.EffectiveCost is None:
                        rec.__dict__["EffectiveCost"] = rec.BilledCost
                    body = rec.__pydantic_serializer__.to_json(rec, exclude_none=True)[:-1] + stamp
                else:
                    # priced or unpriced usage: set the costs (already Decimals) and append the
                    # pricing columns to one serialisation, as above
                    columns = {"x_PriceSource": decision.source, "x_PricedAt": priced_at}
                    if decision.source == domain.NONE:
                        columns["x_PriceReason"] = decision.reason
                        out.unpriced += 1
                    else:
                        rec.__dict__["BilledCost"] = decision.billed_cost
                        rec.__dict__["EffectiveCost"] = decision.effective_cost
                        columns["x_UnitPrice"] = format(decision.unit_price, "f")
                    body = (
                        rec.__pydantic_serializer__.to_json(rec, exclude_none=True)[:-1]
                        + b","
                        + orjson.dumps(columns)[1:]
                    )
                assert rec.x_RecordId is not None  # set by with_record_id() when parsed
                record_id = rec.x_RecordId
                out.lines.append((record_id, body.decode()))
                out.origins[record_id] = env
                out.owners.append((rec.ProviderName, rec.BillingAccountId))
                if rec.x_BillingScope:
                    out.note_scope(rec.x_BillingScope, rec.x_BillingScopeVersion)
                out_headers = span.stored(record_id) if span is not None else batch_headers
                out.outgoing.append((env.key or rec.partition_key(), body, out_headers))
            except Exception as exc:  # noqa: BLE001
                out.letters.append(self._letter(env, f"{type(exc).__name__}: {exc}"))
                if span is not None:
                    span.dead_letters += 1
        for group in groups.values():
            group.end()
        batch_span.set_attributes(
            {"finfocus.stored": len(out.lines), "finfocus.dead_letters": len(out.letters)}
        )
        batch_span.end()
        return out

    def _letter(self, record, error: str) -> DeadLetterV1:
        return _dead_letter(record, error, self._service)

    def _unsigned_scope(self, record) -> str | None:
        """None when the record's billing scope comes from ingest (its signature verifies);
        the dead-letter reason otherwise. A producer that could set a scope and a large
        version would hide every row of another account's month."""
        headers = record.headers
        if not isinstance(headers, Mapping):
            headers = dict(headers or ())
        try:
            verify(self._keys, headers, Topics.RAW_BILLING, record.value or b"", SCOPE_ISSUERS)
        except UntrustedMessage as exc:
            return f"x_BillingScope and x_BillingScopeVersion are set by ingest only: {exc}"
        return None

    @staticmethod
    def _priced_body(
        rec: BillingRecordV1,
        decision: domain.PriceDecision | None,
        priced_at: str,
        out: BatchOutcome,
    ) -> bytes:
        """The careful path for an input that already carries pricing columns: they are
        extra columns (extra="allow"), overwritten in place rather than appended twice."""
        extra = rec.__pydantic_extra__
        assert extra is not None  # only called when the record has extra pricing columns
        if decision is None:
            extra["x_PriceSource"] = domain.BILLED
            if rec.EffectiveCost is None:
                rec.EffectiveCost = rec.BilledCost
        else:
            extra["x_PriceSource"] = decision.source
            if decision.source == domain.NONE:
                extra["x_PriceReason"] = decision.reason
                out.unpriced += 1
            else:
                rec.BilledCost = decision.billed_cost
                rec.EffectiveCost = decision.effective_cost
                extra["x_UnitPrice"] = format(decision.unit_price, "f")
        extra["x_PricedAt"] = priced_at
        return rec.model_dump_json(exclude_none=True).encode()


def _dead_letter(record, error: str, service: str) -> DeadLetterV1:
    envelope = (
        record
        if isinstance(record, Envelope)
        else Envelope(
            value=record.value or b"",
            key=record.key,
            headers=dict(record.headers or ()),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    )
    return envelope_dead_letter(envelope, error, service=service)


def _owner_clash(
    owners: dict[str, tuple[str, str]], record_id: str | None, provider: str, account: str
) -> str | None:
    """The reason when `record_id` already belongs to another (ProviderName, BillingAccountId)
    in this batch (the store checks the lines already stored the same way)."""
    if record_id is None:
        return None
    owner = owners.setdefault(record_id, (provider, account))
    if owner == (provider, account):
        return None
    return (
        f"x_RecordId {record_id!r} already belongs to {owner[0]} billing account {owner[1]!r}: "
        "a record id is scoped to (ProviderName, BillingAccountId)"
    )


class _TraceGroup:
    """The span of the records of one batch that share a trace context, and the headers that
    continue it in their priced records (computed once)."""

    __slots__ = ("span", "records", "dead_letters", "_first_id", "_headers")

    def __init__(self, span) -> None:
        self.span = span
        self.records = 0
        self.dead_letters = 0
        self._first_id: str | None = None
        self._headers: list[tuple[str, bytes]] | None = None

    def stored(self, record_id: str) -> list[tuple[str, bytes]]:
        if self._headers is None:
            self._first_id = record_id
            self._headers = trace_headers(self.span) + _PRICED_HEADERS
        return self._headers

    def end(self) -> None:
        attributes: dict = {"finfocus.records": self.records}
        if self.records == 1 and self._first_id is not None:
            attributes["finfocus.record_id"] = self._first_id
        if self.dead_letters:
            attributes["finfocus.dead_letter"] = True
            attributes["finfocus.dead_letters"] = self.dead_letters
        self.span.set_attributes(attributes)
        self.span.end()
