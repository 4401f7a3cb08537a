"""The canonical-record fast path decides exactly as BillingRecordV1 does.

Thousands of varied records, valid and invalid, go through `BatchPricer` twice: once with
the fast path and once with the model alone. Accept/reject decisions, dead-letter reasons,
stored lines (record id and JSON), keys, scopes and outgoing bytes must all be the same.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from finfocus.broker import Envelope
from schemas.ingest import BillingRecordV1
from services.pricing import batch as batch_module
from services.pricing import fastpath
from services.pricing.batch import BatchPricer

FIXED_NOW = datetime(2024, 10, 1, 12, 0, 0, tzinfo=UTC)


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ARG003
        return FIXED_NOW


def base(i: int = 0) -> dict:
    day = 1 + i % 28
    return {
        "ProviderName": "AWS",
        "BillingAccountId": "123456789012",
        "SubAccountId": f"2100000000{i % 10:02d}",
        "ChargePeriodStart": f"2024-09-{day:02d}T00:00:00Z",
        "ChargePeriodEnd": f"2024-09-{day:02d}T01:00:00Z",
        "BillingCurrency": "USD",
        "ServiceName": "Amazon Elastic Compute Cloud",
        "ServiceCategory": "Compute",
        "ChargeCategory": "Usage",
        "BilledCost": str(Decimal(i % 10_000) / 1000),
        "ConsumedQuantity": "1",
        "ConsumedUnit": "Hours",
        "ResourceId": f"i-{i:017x}",
        "ResourceType": "m5.large",
        "RegionId": "us-east-1",
        "SkuId": "JRTCKXETXF",
        "Tags": {"team": "core"},
        "x_RecordId": f"rec-{i}",
    }


MISSING = object()

MONEY = [
    "0",
    "-0",
    "1",
    "1.5",
    "1.50",
    "-1.25",
    "0.000001",
    "123456789012345678901234567890.123456789",
    "01",
    "+1",
    " 1",
    "1 ",
    "1.",
    ".5",
    "1e3",
    "1E-2",
    "NaN",
    "Infinity",
    "-Infinity",
    "abc",
    "",
    "1_000",
    "١٢",
    "0x10",
    1,
    0,
    -3,
    1.5,
    0.1,
    1e20,
    1e-7,
    True,
    None,
    [],
    {},
    MISSING,
    # the contract's bounds: 24 digits before the point, 24 after (what the stores hold)
    "9" * 24,
    "1" + "0" * 24,
    "-" + "9" * 24 + "." + "9" * 24,
    "0." + "0" * 23 + "1",
    "0." + "0" * 24 + "1",
    "1" * 140_000,
    "1E+999999",
    1e24,
    1e-30,
]
STAMPS = [
    "2024-09-01T00:00:00Z",
    "2024-02-29T23:59:59Z",
    "2023-02-29T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2024-09-01T00:00:00",
    "2024-09-01T00:00:00+00:00",
    "2024-09-01T02:00:00+02:00",
    "2024-09-01T00:00:00.5Z",
    "2024-09-01T00:00:00.000000Z",
    "2024-09-01",
    "2024-09-01 00:00:00Z",
    "2024-09-01T00:00:00z",
    "2024-09-01T24:00:00Z",
    "2024-09-01T23:59:60Z",
    "2024-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    " 2024-09-01T00:00:00Z",
    "2024-09-01T00:00Z",
    "1725148800",
    1725148800,
    None,
    "",
    MISSING,
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T05:00:00+05:00",
    "9999-12-31T23:00:00-05:00",
]
TEXT = [
    "x",
    "",
    " ",
    " padded",
    "padded ",
    "tab\t",
    "\u00a0nbsp",
    "\u3000ideo",
    "zero\u200bwidth",
    "\u2028",
    "line\nbreak",
    "ctrl\x01\x1f",
    'quote"back\\slash/',
    "ünïcødé €",
    "emoji 😀",
    "\x7f",
    "\u0085next",
    "\x1cfs",
    5,
    1.5,
    True,
    None,
    [],
    {"a": "b"},
    MISSING,
    "nul\x00inside",
    "\x00",
    "x" * 8192,
    "x" * 8193,
]
CURRENCIES = ["USD", "EUR", "JPY", "usd", "XXX", "US", " USD", "USD ", "ABC", 840, None, MISSING]
CATEGORIES = [
    "Usage",
    "Purchase",
    "Tax",
    "Credit",
    "Adjustment",
    "usage",
    " Usage",
    "Refund",
    "",
    1,
    None,
    MISSING,
]
TAGS = [
    {},
    {"team": "core"},
    {"a": "1", "b": "2"},
    {" a": "b"},
    {"a": " b"},
    {"a": 1},
    {"a": None},
    {"a": {"b": "c"}},
    {"é": "ü"},
    {"": ""},
    ["a"],
    "team=core",
    None,
    MISSING,
    {"a\x00": "b"},
    {"a": "b\x00"},
    {"a": "v" * 8193},
]
VERSIONS = [
    0,
    1,
    7,
    -1,
    2**62,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**15,
    "3",
    3.0,
    3.5,
    True,
    None,
    "",
    MISSING,
]
EXTRAS = {
    "Foo": "bar",
    "billedcost": "1",
    "AvailabilityZone": "us-east-1a",
    "InvoiceId": " inv ",
    "x_Custom": "v",
    "x_Number": 5,
    "x_Float": 1.5,
    "x_Bool": False,
    "x_Null": None,
    "x_List": [1],
    "x_Obj": {"a": 1},
    "x_PriceSource": "billed",
    "x_PricedAt": "2024-01-01T00:00:00Z",
    "x_UnitPrice": "1",
    "x_PriceReason": "r",
    "x_": "empty",
    "SkuPriceDetails": {"k": "v"},
    "PricingCategory": "Standard",
    "x_Nul": "a\x00b",
    "x_Int64": 2**63 - 1,
    "x_Int65": 2**63,
    "x_Long": "y" * 9000,
    "x_Deep": {"a": [[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]},
    "x_NulObj": {"k": ["\x00"]},
}
FIELDS_TEXT = [
    "ProviderName",
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "ServiceName",
    "ServiceCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ConsumedUnit",
    "PricingUnit",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "RegionId",
    "RegionName",
    "SkuId",
    "x_RecordId",
    "x_BillingScope",
    "x_ImportJobId",
]
FIELDS_MONEY = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "ConsumedQuantity",
    "PricingQuantity",
]
FIELDS_STAMP = ["ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"]


def _set(row: dict, key: str, value) -> None:
    if value is MISSING:
        row.pop(key, None)
    else:
        row[key] = value


def mutate(rng: random.Random, row: dict) -> None:
    kind = rng.randrange(9)
    if kind == 0:
        _set(row, rng.choice(FIELDS_TEXT), rng.choice(TEXT))
    elif kind == 1:
        _set(row, rng.choice(FIELDS_MONEY), rng.choice(MONEY))
    elif kind == 2:
        _set(row, rng.choice(FIELDS_STAMP), rng.choice(STAMPS))
    elif kind == 3:
        _set(row, "BillingCurrency", rng.choice(CURRENCIES))
    elif kind == 4:
        _set(row, "ChargeCategory", rng.choice(CATEGORIES))
    elif kind == 5:
        _set(row, "Tags", rng.choice(TAGS))
    elif kind == 6:
        _set(row, "x_BillingScopeVersion", rng.choice(VERSIONS))
        if rng.random() < 0.5:
            row["x_BillingScope"] = rng.choice(["AWS:123:2024-09", "", " AWS:1:2024-09"])
    elif kind == 7:
        key = rng.choice(list(EXTRAS))
        row[key] = EXTRAS[key]
    else:
        # credits and refunds: negative money, a Credit row, end before start
        choice = rng.randrange(3)
        if choice == 0:
            row["ChargeCategory"] = "Credit"
            row["BilledCost"] = "-" + rng.choice(["0.01", "12.5", "1000"])
        elif choice == 1:
            row["ChargePeriodStart"], row["ChargePeriodEnd"] = (
                row["ChargePeriodEnd"],
                row["ChargePeriodStart"],
            )
        else:
            row["ChargePeriodEnd"] = row["ChargePeriodStart"]


def records(n: int = 6000, seed: int = 20241122) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(n):
        row = base(i)
        for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3])):
            mutate(rng, row)
        if rng.random() < 0.1:
            items = list(row.items())
            rng.shuffle(items)
            row = dict(items)
        indent = rng.random() < 0.05
        try:
            raw = orjson.dumps(
                row, option=orjson.OPT_INDENT_2 if indent else None
            )  # whitespace between tokens
        except TypeError:  # an integer beyond 64 bits: orjson does not write those
            raw = json.dumps(row, ensure_ascii=False).encode()
        out.append(raw)
    # not JSON, not an object, truncated, invalid UTF-8, duplicate keys, escapes, a usage row
    good = orjson.dumps(base(1))
    out += [
        b"",
        b"not json",
        b"[]",
        b"null",
        b"42",
        b'"str"',
        good[:-1],
        good + b"x",
        good.replace(b"AWS", b"\xff\xfe"),
        good[:-1] + b',"BilledCost":"9.99"}',
        good[:-1] + b',"ProviderName":"GCP"}',
        good[:-1] + b',"BilledCost":1.10}',
        good.replace(b'"Amazon', b'"\\u0041mazon'),
        good.replace(b'"AWS"', b'"\\ud800"'),
        good.replace(b'"AWS"', b'"A\\u0000"'),
        good.replace(b'"1.000"', b"1.000"),
        good.replace(b'"1.000"', b"1e400"),
        good.replace(b'"1.000"', b"NaN"),
        good[:-1] + b',"x_Big":123456789012345678901234567890}',
        good[:-1] + b',"x_Float":1.0}',
        orjson.dumps({k: v for k, v in base(2).items() if k != "BilledCost"}),
        orjson.dumps(
            {k: v for k, v in base(3).items() if k not in ("BilledCost", "ConsumedQuantity")}
        ),
        orjson.dumps({k: v for k, v in base(4).items() if k != "x_RecordId"}),
    ]
    for key in (
        "ProviderName",
        "BillingAccountId",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "BillingCurrency",
        "ServiceName",
        "ChargeCategory",
    ):
        out.append(orjson.dumps({k: v for k, v in base(5).items() if k != key}))
    return out


def run(values: list[bytes], monkeypatch, *, fast: bool):
    monkeypatch.setattr(batch_module, "datetime", _FixedClock)
    if not fast:
        monkeypatch.setattr(fastpath, "parse", lambda raw: None)
    tracer = TracerProvider().get_tracer("test")
    envs = [
        Envelope(
            value=v,
            key=None if i % 3 else b"given-key",
            headers={},
            topic="raw-billing",
            partition=i % 2,
            offset=i,
        )
        for i, v in enumerate(values)
    ]
    outcome = asyncio.run(BatchPricer(tracer).process(envs))
    monkeypatch.undo()
    return outcome


def test_the_fast_path_covers_every_field_of_the_model():
    assert fastpath.ENABLED, "a field of BillingRecordV1 has no fast-path rule: add one"


def test_fast_path_and_model_agree_on_varied_records(monkeypatch):
    values = records()
    taken = sum(fastpath.parse(v) is not None for v in values)
    assert 0.25 * len(values) < taken < 0.9 * len(values), taken  # both paths well exercised

    fast = run(values, monkeypatch, fast=True)
    slow = run(values, monkeypatch, fast=False)

    assert [(letter.source_offset, letter.error) for letter in fast.letters] == [
        (letter.source_offset, letter.error) for letter in slow.letters
    ]
    assert len(slow.letters) > 0.2 * len(values)
    assert fast.lines == slow.lines
    # same keys and bytes; same headers but for the batch span's (per run) trace id
    assert [(k, body) for k, body, _ in fast.outgoing] == [
        (k, body) for k, body, _ in slow.outgoing
    ]
    assert [[n for n, _ in h] for _, _, h in fast.outgoing] == [
        [n for n, _ in h] for _, _, h in slow.outgoing
    ]
    assert [[(n, v) for n, v in h if n != "traceparent"] for _, _, h in fast.outgoing] == [
        [(n, v) for n, v in h if n != "traceparent"] for _, _, h in slow.outgoing
    ]
    assert fast.scopes == slow.scopes
    assert fast.positions == slow.positions
    assert fast.unpriced == slow.unpriced


def test_every_record_the_fast_path_takes_is_valid_and_unchanged_by_the_model():
    for raw in records(3000, seed=7):
        canonical = fastpath.parse(raw)
        if canonical is None:
            continue
        record_id, scope, key, columns = canonical
        rec = BillingRecordV1.model_validate_json(raw)
        assert rec.BilledCost is not None and rec.x_RecordId == record_id
        assert rec.x_BillingScope == scope and rec.partition_key() == key
        if rec.EffectiveCost is None:
            rec.EffectiveCost = rec.BilledCost
        assert rec.__pydantic_serializer__.to_json(rec, exclude_none=True) == orjson.dumps(columns)
        for name in ("BilledCost", "EffectiveCost", "ListCost", "ConsumedQuantity"):
            if name in columns:
                assert isinstance(columns[name], str)  # decimal text, never a float
                assert Decimal(columns[name]) == getattr(rec, name)


@pytest.mark.parametrize(
    "code",
    [c for c in range(0x3100) if chr(c).isspace() or chr(c) in "\u200b\u180e\ufeff"] + [0xFEFF],
)
def test_text_the_fast_path_keeps_is_text_the_model_keeps(code):
    # str_strip_whitespace: whatever pydantic strips, the fast path must refuse
    row = base()
    row["ServiceCategory"] = f"{chr(code)}Compute{chr(code)}"
    raw = orjson.dumps(row)
    rec = BillingRecordV1.model_validate_json(raw)
    if rec.ServiceCategory != row["ServiceCategory"]:
        assert fastpath.parse(raw) is None


def test_records_sharing_a_trace_context_share_one_pricing_span():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    chunk = b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"  # an import chunk's context
    alone = b"00-" + b"c" * 32 + b"-" + b"d" * 16 + b"-01"  # a record sent on its own
    values = [orjson.dumps(base(i)) for i in range(5)] + [b"not json"]
    heads = [chunk, chunk, chunk, alone, None, chunk]
    envs = [
        Envelope(
            value=v,
            key=None,
            headers={"traceparent": h} if h else {},
            topic="raw-billing",
            partition=0,
            offset=i,
        )
        for i, (v, h) in enumerate(zip(values, heads, strict=True))
    ]
    outcome = asyncio.run(BatchPricer(provider.get_tracer("test")).process(envs))
    spans = {
        s.context.trace_id: s for s in exporter.get_finished_spans() if s.name == "pricing.price"
    }
    assert len(spans) == 2 and len(outcome.lines) == 5 and len(outcome.letters) == 1
    shared, single = spans[int("a" * 32, 16)], spans[int("c" * 32, 16)]
    assert (
        shared.attributes["finfocus.records"] == 4
        and shared.attributes["finfocus.dead_letters"] == 1
    )
    assert single.attributes["finfocus.record_id"] == outcome.lines[3][0]
    traces = [dict(h)["traceparent"][3:35] for _, _, h in outcome.outgoing]
    assert (
        traces[:3] == [b"a" * 32] * 3
        and traces[3] == b"c" * 32
        and traces[4] not in (b"a" * 32, b"c" * 32)
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ServiceName", "EC2\x00"),
        ("ResourceId", "i-" + "0" * 8192),
        ("Tags", {"k": "\x00"}),
        ("x_BillingScopeVersion", 2**63),
        ("x_BillingScopeVersion", -(2**63) - 1),
        ("BilledCost", "1" * 140_000),
        ("BilledCost", "1" + "0" * 24),
        ("BilledCost", "0." + "0" * 24 + "1"),
        ("ChargePeriodStart", "0001-01-01T00:00:00+05:00"),
        ("x_Custom", "a\x00"),
        ("x_Custom", 2**64),
        ("x_Custom", 1e400),
        ("x_Custom", {"a": [[[[[[[[[[[[[[[[["too deep"]]]]]]]]]]]]]]]]]}),
    ],
)
def test_values_the_store_would_refuse_are_refused_by_both_paths(field, value):
    row = base()
    row[field] = value
    raw = json.dumps(row).encode()
    assert fastpath.parse(raw) is None
    with pytest.raises(ValidationError):
        BillingRecordV1.model_validate_json(raw)


@pytest.mark.parametrize("value", [[], {}, ["2024-09-01T00:00:00Z"], {"a": 1}, 1.5])
def test_a_timestamp_of_the_wrong_type_is_the_models_to_refuse(value):
    # found by fuzzing: an unhashable timestamp raised out of the batch and failed all of it
    row = base()
    row["ChargePeriodStart"] = value
    assert fastpath.parse(orjson.dumps(row)) is None


def test_a_record_that_already_carries_pricing_columns_is_repriced_not_dead_lettered(monkeypatch):
    # the careful path (`_priced_body`) had slipped out of BatchPricer: such a record was
    # dead-lettered with an AttributeError instead of priced
    row = base()
    row.update(
        {"x_PriceSource": "spec:old", "x_PricedAt": "2020-01-01T00:00:00Z", "x_UnitPrice": "9"}
    )
    outcome = run([orjson.dumps(row)], monkeypatch, fast=True)
    assert outcome.letters == []
    ((_, body),) = outcome.lines
    priced = orjson.loads(body)
    assert priced["x_PriceSource"] == "billed"
    assert priced["x_PricedAt"] != "2020-01-01T00:00:00Z"
    assert priced["EffectiveCost"] == priced["BilledCost"]
