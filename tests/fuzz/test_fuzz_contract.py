"""Fuzz BillingRecord v1 and pricing's fast path: any bytes are accepted or refused with a
ValidationError (nothing else escapes), an accepted record serialises to what the stores hold
and validates again to the same bytes, and the fast path never takes a record the model would
refuse or write differently."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.common import MAX_TEXT
from schemas.ingest import BillingRecordV1
from services.pricing import fastpath
from tests.fuzz.strategies import billing_rows, encode, json_values

FIELDS = sorted(BillingRecordV1.model_fields) + ["x_Custom", "SkuPriceDetails", "Colour"]
#: JSON objects with contract column names and any values: mostly refused, each with a reason
wild_rows = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=12)


def _mutated(data: st.DataObject) -> dict:
    row = data.draw(billing_rows())
    for key, value in data.draw(wild_rows).items():
        row[key] = value
    return row


def check(raw: bytes) -> None:
    try:
        record = BillingRecordV1.model_validate_json(raw)
    except ValidationError as exc:
        assert exc.errors(), raw
        assert fastpath.parse(raw) is None, raw  # the fast path never takes a refused record
        return
    record.with_record_id()
    dumped = record.model_dump_json(exclude_none=True).encode()
    assert b"\\u0000" not in dumped
    again = BillingRecordV1.model_validate_json(dumped)
    assert again.model_dump_json(exclude_none=True).encode() == dumped
    for name in ("BilledCost", "EffectiveCost", "ListCost", "ConsumedQuantity", "PricingQuantity"):
        value = orjson.loads(dumped).get(name)
        assert value is None or len(value) <= 50, (name, value)
    assert all(len(v) <= MAX_TEXT for v in orjson.loads(dumped).values() if isinstance(v, str))
    canonical = fastpath.parse(raw)
    if canonical is not None:
        record_id, scope, key, columns = canonical
        assert (record_id, scope, key) == (
            record.x_RecordId,
            record.x_BillingScope,
            record.partition_key(),
        )
        if record.EffectiveCost is None:
            record.EffectiveCost = record.BilledCost
        assert record.__pydantic_serializer__.to_json(record, exclude_none=True) == orjson.dumps(
            columns
        )


@given(st.data())
def test_near_valid_records_are_accepted_whole_or_refused_with_a_reason(data):
    check(encode(_mutated(data)))


@given(billing_rows())
def test_generated_records_round_trip_through_the_contract(row):
    check(encode(row))


@given(st.binary(max_size=2000))
def test_any_bytes_are_a_record_or_a_validation_error(raw):
    check(raw)
