"""Field types shared by the contracts: money, currencies, timestamps."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StringConstraints

from schemas.currencies import is_iso_4217

# What a contract accepts, the stores accept: every bound below is one a PostgreSQL column
# (text, bigint, numeric, timestamptz, jsonb) or a consumer's serialisation would otherwise
# refuse later, where one record's refusal used to cost its whole batch.

#: longest text in a contract field, in characters
MAX_TEXT = 8192
#: digits before and after the decimal point of money and quantities, as written
MAX_INTEGER_DIGITS = 24
MAX_FRACTION_DIGITS = 24
#: PostgreSQL bigint
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: nesting of JSON objects and arrays in extension columns
MAX_JSON_DEPTH = 16


def text_problem(value: str) -> str | None:
    """Why PostgreSQL's text and jsonb would refuse this string; None when they accept it."""
    if len(value) > MAX_TEXT:
        return f"text of {len(value)} characters is longer than {MAX_TEXT}"
    if "\x00" in value:
        return "text contains a NUL character (\\u0000), which PostgreSQL cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text contains a lone surrogate, which is not UTF-8"
    return None


def _storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: text a store can hold: at most MAX_TEXT characters, no NUL, valid UTF-8
Text = Annotated[str, AfterValidator(_storable_text)]
#: a non-empty Text
RequiredText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_storable_text)]
#: an integer PostgreSQL's bigint holds
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


def json_value_problem(value: object, depth: int = 0) -> str | None:
    """Why a JSON value (an extension column) would not store in jsonb as it is; None if it does.

    Strings as `Text`, integers as bigint, floats finite (an infinity would become null),
    nesting at most MAX_JSON_DEPTH deep.
    """
    if value is None or value is True or value is False:
        return None
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int):
        return (
            None if INT64_MIN <= value <= INT64_MAX else f"integer {value} does not fit in 64 bits"
        )
    if isinstance(value, float):
        return None if math.isfinite(value) else "number is not finite"
    if isinstance(value, Decimal):
        return money_problem(value)
    if depth >= MAX_JSON_DEPTH:
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else "object key is not text"
            problem = problem or json_value_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        for item in value:
            problem = json_value_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return None  # datetimes, UUIDs, ...: pydantic writes them as text


def _no_float_artifacts(value: object) -> object:
    # A JSON number such as 0.1 arrives as a float; going through its repr keeps "0.1"
    # instead of the binary expansion 0.1000000000000000055511151231257827.
    if isinstance(value, float):
        return repr(value)
    return value


def _storable_json(value: dict) -> dict:
    problem = json_value_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: a JSON object whose every value a store's jsonb holds (see `json_value_problem`)
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


def money_problem(value: Decimal) -> str | None:
    """Why a decimal is not storable money; None when it is (finite, at most
    MAX_INTEGER_DIGITS digits before the point and MAX_FRACTION_DIGITS after, as written)."""
    if not value.is_finite():
        return "money must be a finite decimal"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) + exponent > MAX_INTEGER_DIGITS:
        return f"money has more than {MAX_INTEGER_DIGITS} digits before the decimal point"
    if -exponent > MAX_FRACTION_DIGITS:
        return f"money has more than {MAX_FRACTION_DIGITS} digits after the decimal point"
    return None


def _finite(value: Decimal) -> Decimal:
    problem = money_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: Money is a Decimal on the way in (string or number) and a string on the way out; bounded
#: so that PostgreSQL's numeric holds it and its text stays short (see `money_problem`).
Money = Annotated[
    Decimal,
    BeforeValidator(_no_float_artifacts),
    AfterValidator(_finite),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]

#: A quantity (usage, pricing) follows the same rules as money: exact decimals.
Quantity = Money


def _currency(value: str) -> str:
    if not isinstance(value, str) or not is_iso_4217(value):
        raise ValueError(f"unknown currency {value!r}: expected an ISO 4217 code such as USD")
    return value


CurrencyCode = Annotated[str, AfterValidator(_currency)]


def _assume_utc(value: datetime) -> datetime:
    # FOCUS timestamps are UTC; a producer that omits the offset means UTC.
    if not value.tzinfo:
        return value.replace(tzinfo=UTC)
    # 0001-01-01T00:00:00+05:00 is year 0 in UTC: every consumer writes UTC, so the
    # instant must have a UTC spelling (years 1 to 9999).
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is outside years 1 to 9999 once converted to UTC") from None
    return value


@lru_cache(maxsize=65536)
def _rfc3339(value: datetime) -> str:
    # Cached: billing rows repeat the same period boundaries thousands of times, and equal
    # instants (whatever their offset) have one UTC spelling.
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: RFC 3339 timestamp, normalised to UTC on output (`2024-09-01T00:00:00Z`).
Timestamp = Annotated[
    datetime,
    AfterValidator(_assume_utc),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]


def described(description: str, **kwargs: object) -> object:
    """`Field(description=...)` shorthand: every contract field is documented in AsyncAPI."""
    return Field(description=description, **kwargs)  # type: ignore[call-overload]
