"""Field types shared by the contracts: money, currencies, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer

from schemas.currencies import is_iso_4217


def _no_float_artifacts(value: object) -> object:
    # A JSON number such as 0.1 arrives as a float; going through its repr keeps "0.1"
    # instead of the binary expansion 0.1000000000000000055511151231257827.
    if isinstance(value, float):
        return repr(value)
    return value


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("money must be a finite decimal")
    return value


#: Money is a Decimal on the way in (string or number) and a string on the way out.
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
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
