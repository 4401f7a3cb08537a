"""Fast path for billed records that are already in canonical form.

Most records on `raw-billing` are billed rows written by our own ingest service: UTC
timestamps spelt `YYYY-MM-DDTHH:MM:SSZ`, money as plain decimal strings, no stray
whitespace, a record id. For those, building a `BillingRecordV1` (with its Decimals and
datetimes) and serialising it again costs more than the rest of pricing together.

`parse` accepts a record only when it can tell, with plain Python, that the model would
accept it *and* serialise it back to the same values; it returns None for anything else
(usage rows to price, numbers for money, naive or offset timestamps, whitespace to strip,
unknown columns, invalid records, ...), and the caller then takes the model's path, so
every dead-letter reason stays the model's own. Money stays a decimal string (never a
float): PostgreSQL parses it into numeric.

tests/unit/pricing/test_fastpath.py runs many valid and invalid records through both paths
and compares the decisions and the bytes they produce.
"""

from __future__ import annotations

import re
from datetime import datetime

import orjson

from schemas.common import (
    INT64_MAX,
    INT64_MIN,
    MAX_FRACTION_DIGITS,
    MAX_INTEGER_DIGITS,
    MAX_TEXT,
    _rfc3339,
)
from schemas.currencies import ISO_4217
from schemas.ingest import OTHER_FOCUS_COLUMNS, BillingRecordV1, ChargeCategoryName

#: columns pricing writes: an input that already has one takes the model's (careful) path
PRICING_COLUMNS = frozenset({"x_PriceSource", "x_PricedAt", "x_PriceReason", "x_UnitPrice"})

_REQUIRED_TEXT = ("ProviderName", "BillingAccountId", "ServiceName")
_OPTIONAL_TEXT = frozenset(
    {
        "BillingAccountName",
        "SubAccountId",
        "SubAccountName",
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
        "x_BillingScope",
        "x_ImportJobId",
    }
)
_DECIMALS = frozenset(
    {
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ContractedCost",
        "ListUnitPrice",
        "ContractedUnitPrice",
        "ConsumedQuantity",
        "PricingQuantity",
    }
)
_TIMESTAMPS = frozenset(
    {"ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"}
)
_HANDLED = (
    set(_REQUIRED_TEXT)
    | _OPTIONAL_TEXT
    | _DECIMALS
    | _TIMESTAMPS
    | {"BillingCurrency", "ChargeCategory", "Tags", "x_RecordId", "x_BillingScopeVersion"}
)

#: field order of the model: the serialised record lists its columns in this order
_FIELDS = tuple(BillingRecordV1.model_fields)
_FIELD_SET = frozenset(_FIELDS)
#: a field added to the model without a rule here switches the fast path off (never guess)
ENABLED = _FIELD_SET == _HANDLED

_CATEGORIES = frozenset(c.value for c in ChargeCategoryName)
# canonical decimals only: what format(Decimal(s), "f") gives back unchanged ([0-9], not \d),
# within the contract's bounds on digits (schemas.common.money_problem)
_DECIMAL = re.compile(
    rf"-?(?:0|[1-9][0-9]{{0,{MAX_INTEGER_DIGITS - 1}}})(?:\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?"
).fullmatch
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z").fullmatch

#: canonical timestamp spellings seen so far (billing rows repeat their period boundaries)
_good_stamps: set[str] = set()


def _plain_text(value: object) -> bool:
    """Text the model keeps as it is and the store accepts: nothing to strip
    (str_strip_whitespace: strip returns the very same object), within MAX_TEXT, no NUL
    (orjson refuses lone surrogates before we get here)."""
    return (
        type(value) is str
        and len(value) <= MAX_TEXT
        and value.strip() is value
        and "\x00" not in value
    )


def _canonical_stamp(value: object) -> bool:
    if type(value) is not str:
        return False
    if value in _good_stamps:
        return True
    if not _TIMESTAMP(value):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    if parsed.tzinfo is None or _rfc3339(parsed) != value:
        return False  # the model would write it differently
    if len(_good_stamps) < 65536:
        _good_stamps.add(value)
    return True


_TEXT, _DEC, _STAMP, _CURRENCY, _CATEGORY, _TAGS, _INT = range(7)
_KIND = {
    **{name: _TEXT for name in (*_REQUIRED_TEXT, *_OPTIONAL_TEXT, "x_RecordId")},
    **{name: _DEC for name in _DECIMALS},
    **{name: _STAMP for name in _TIMESTAMPS},
    "BillingCurrency": _CURRENCY,
    "ChargeCategory": _CATEGORY,
    "Tags": _TAGS,
    "x_BillingScopeVersion": _INT,
}
_POSITION = {name: i for i, name in enumerate(_FIELDS)}
_EFFECTIVE = _POSITION["EffectiveCost"]


def parse(raw: bytes) -> tuple[str, str | None, bytes, dict] | None:  # noqa: C901 - a hand-unrolled parser of the canonical record (the fast path): one branch per field
    """`(x_RecordId, x_BillingScope, partition key, columns)` of a canonical billed record,
    with `columns` in the order the model serialises them (EffectiveCost defaulted to
    BilledCost, nulls dropped); None when the model has to decide."""
    if not ENABLED:
        return None
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(row) is not dict:
        return None
    kinds = _KIND.get
    position = _POSITION.__getitem__  # every key with a kind has a position
    last = -1
    in_order = True
    extras = None
    # the columns as the model writes them: fields in declaration order without nulls,
    # EffectiveCost defaulting to BilledCost, then the extra columns (built here when the
    # input is already in that order, the usual case)
    out: dict = {}
    pending = True  # EffectiveCost not written yet
    for key, value in row.items():
        kind = kinds(key)
        if kind is None:
            if (
                key in PRICING_COLUMNS
                or not key.startswith("x_")
                and key not in OTHER_FOCUS_COLUMNS
            ):
                return None
            if value is None:
                continue
            if type(value) is str:
                if len(value) > MAX_TEXT or "\x00" in value:
                    return None
            elif type(value) is int:
                if not INT64_MIN <= value <= INT64_MAX:
                    return None
            elif type(value) is not bool:
                return None
            if extras is None:
                extras = []
            extras.append(key)
            continue
        if extras is not None:
            in_order = False  # the model writes its fields first, then the extra columns
        here = position(key)
        if here < last:
            in_order = False
        last = here
        if value is None:
            continue
        if kind == _TEXT:
            if not _plain_text(value):
                return None
        elif kind == _DEC:
            if type(value) is not str or not _DECIMAL(value):
                return None
        elif kind == _STAMP:
            # type first: a list or an object is not hashable (found by fuzzing: it raised
            # out of the batch loop and failed the whole batch)
            if type(value) is not str or value not in _good_stamps and not _canonical_stamp(value):
                return None
        elif kind == _CURRENCY:
            if type(value) is not str or value not in ISO_4217:
                return None
        elif kind == _CATEGORY:
            if type(value) is not str or value not in _CATEGORIES:
                return None
        elif kind == _TAGS:
            if type(value) is not dict:
                return None
            for k, v in value.items():
                if not _plain_text(k) or not _plain_text(v):
                    return None
        elif type(value) is not int or not INT64_MIN <= value <= INT64_MAX:  # _INT
            return None
        if pending and here >= _EFFECTIVE:
            if here > _EFFECTIVE:
                out["EffectiveCost"] = row.get("BilledCost")
            pending = False
        out[key] = value

    get = row.get
    provider, account, record_id = get("ProviderName"), get("BillingAccountId"), get("x_RecordId")
    if not provider or not account or not get("ServiceName") or not record_id:
        return None  # missing, null or empty: the model says which
    start, end = get("ChargePeriodStart"), get("ChargePeriodEnd")
    if start is None or end is None or end < start:
        return None  # canonical UTC spellings of one length: text order is time order
    if get("BillingCurrency") is None or get("ChargeCategory") is None:
        return None
    billed = get("BilledCost")
    if billed is None:
        return None  # usage rows are priced through the model
    if not in_order:
        out = {}
        for key in _FIELDS:
            value = get(key)
            if value is not None:
                out[key] = value
            elif key == "EffectiveCost":
                out[key] = billed
    elif pending:
        out["EffectiveCost"] = billed
    if extras:
        for key in extras:
            out[key] = row[key]
    key = f"{provider}:{get('SubAccountId') or account}".encode()
    return record_id, get("x_BillingScope"), key, out
