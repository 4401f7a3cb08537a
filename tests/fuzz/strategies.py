"""Hypothesis strategies for billing records: mostly rows the contract accepts, near its bounds
(text up to the limit, 24-digit money, int64 versions, years 1 and 9999 with offsets, nested
extension columns), and now and then a value just beyond them.

Shared by the fuzz targets (tests/fuzz) and the store property test (tests/integration).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from schemas.common import INT64_MAX, INT64_MIN, MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS
from schemas.currencies import ISO_4217
from schemas.ingest import ChargeCategoryName

#: any Unicode scalar value PostgreSQL's UTF-8 can hold, and now and then a NUL
characters = st.characters(codec="utf-8")
_clean = st.text(characters.filter(lambda c: c != "\x00"), max_size=30)
text = st.one_of(
    _clean,
    _clean,
    _clean,
    _clean,
    st.text(characters, max_size=30),
    st.sampled_from(["x" * 8192, "é" * 8192, "€" * 8192, "y" * 100, "x" * 8193]),
)
required_text = text.filter(lambda s: s.strip())


@st.composite
def money(draw) -> object:
    """Decimal text within the bounds (sometimes one digit beyond), or a JSON number."""
    beyond = draw(st.integers(0, 9)) == 0
    whole = draw(st.integers(0, MAX_INTEGER_DIGITS + beyond))
    fraction = draw(st.integers(0, MAX_FRACTION_DIGITS + beyond))
    digits = draw(st.text("0123456789", min_size=whole + fraction, max_size=whole + fraction))
    head = digits[:whole].lstrip("0") or "0"
    value = head + ("." + digits[whole:] if fraction else "")
    if draw(st.booleans()):
        value = "-" + value
    return draw(
        st.one_of(
            st.just(value),
            st.just(value),
            st.just(value),
            st.integers(-(10**25), 10**25),
            st.floats(-1e20, 1e20),
            st.floats(allow_nan=False, allow_infinity=False),
        )
    )


offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.one_of(st.none(), st.just(UTC), offsets),
)


def _stamp(value: datetime) -> str:
    return value.isoformat()


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _clean,
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=12,
)
extension_names = st.from_regex(r"x_[A-Z][A-Za-z0-9]{0,12}", fullmatch=True).filter(
    lambda k: (
        k
        not in {
            "x_RecordId",
            "x_BillingScope",
            "x_BillingScopeVersion",
            "x_ImportJobId",
            "x_PriceSource",
            "x_PricedAt",
            "x_PriceReason",
            "x_UnitPrice",
        }
    )
)


@st.composite
def billing_rows(draw, *, scoped: bool = True) -> dict:
    """A BillingRecord v1 as a producer would write it (a JSON object)."""
    start = draw(instants)
    end = start + draw(st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=1)]))
    if end.replace(tzinfo=None) > datetime(9999, 12, 31, 23, 59, 59):
        end = start
    row: dict = {
        "ProviderName": draw(required_text),
        "BillingAccountId": draw(required_text),
        "ChargePeriodStart": _stamp(start),
        "ChargePeriodEnd": _stamp(end),
        "BillingCurrency": draw(st.sampled_from(sorted(ISO_4217))),
        "ServiceName": draw(required_text),
        "ChargeCategory": draw(st.sampled_from([c.value for c in ChargeCategoryName])),
    }
    if draw(st.integers(0, 4)):
        row["BilledCost"] = draw(money())
    else:  # a usage row for pricing to price
        row.update(
            ConsumedQuantity=draw(money()),
            ConsumedUnit=draw(required_text),
            ResourceType=draw(required_text),
        )
    optional = {
        "SubAccountId": text,
        "ResourceId": text,
        "RegionId": text,
        "SkuId": text,
        "ChargeDescription": text,
        "EffectiveCost": money(),
        "ListCost": money(),
        "PricingQuantity": money(),
        "BillingPeriodStart": instants.map(_stamp),
        "Tags": st.dictionaries(text, text, max_size=3),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        row[name] = draw(optional[name])
    row.update(draw(st.dictionaries(extension_names, json_values, max_size=2)))
    if draw(st.booleans()):
        row["x_RecordId"] = str(draw(st.uuids()))
    if scoped and draw(st.integers(0, 3)) == 0:
        row["x_BillingScope"] = draw(required_text)
        row["x_BillingScopeVersion"] = draw(
            st.one_of(
                st.integers(0, INT64_MAX),
                st.sampled_from([INT64_MIN, INT64_MAX, INT64_MAX + 1, 10**15]),
            )
        )
    return row


def encode(row: object) -> bytes:
    """JSON bytes (the stdlib writes integers beyond 64 bits, which orjson does not)."""
    return json.dumps(row, ensure_ascii=False).encode()
