"""One vocabulary for every command: how filter values match, and how tables show values.

Filter values match case-insensitively, and provider names take the short names people type
(`aws`, `azure`, `gcp`) for the `ProviderName` values the exports carry (`AWS`, `Microsoft`,
`Google Cloud`). When nothing matches, the commands say which values exist instead of
printing an empty total.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# how filter values match is part of the read contract (the api compares the same way)
from schemas.reads.vocab import PROVIDER_ALIASES, canonical, folded, matches, no_match_hint

__all__ = [
    "NONE",
    "PROVIDER_ALIASES",
    "UNTAGGED",
    "canonical",
    "cents",
    "folded",
    "group_label",
    "matches",
    "no_match_hint",
    "plural",
    "share",
]

UNTAGGED = "(untagged)"
NONE = "(none)"


def group_label(key: str, value: object) -> str:
    """A group value for people: `(untagged)` for a missing tag, `(none)` for another missing value."""
    if value is None or value == "":
        return UNTAGGED if key.startswith("tag:") else NONE
    return str(value)


def cents(value: Decimal | str | float | int | None, *, grouped: bool = True) -> str:
    """Money for a table: rounded half-up to the cent (JSON keeps full precision)."""
    if value is None or value == "":
        return ""
    q = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return format(q, ",f" if grouped else "f")


def share(part: Decimal, whole: Decimal) -> str:
    """A share of a total as a percentage for a table ('' when the total is not positive)."""
    if whole <= 0:
        return ""
    return f"{(part / whole * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 anomaly`, `2 anomalies`."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
