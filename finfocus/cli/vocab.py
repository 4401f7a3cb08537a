"""One vocabulary for every command: how filter values match, and how tables show values.

Filter values match case-insensitively, and provider names take the short names people type
(`aws`, `azure`, `gcp`) for the `ProviderName` values the exports carry (`AWS`, `Microsoft`,
`Google Cloud`). When nothing matches, the commands say which values exist instead of
printing an empty total.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

#: what people type -> the FOCUS ProviderName the data carries
PROVIDER_ALIASES = {
    "aws": "AWS",
    "amazon": "AWS",
    "amazon web services": "AWS",
    "azure": "Microsoft",
    "microsoft": "Microsoft",
    "microsoft azure": "Microsoft",
    "gcp": "Google Cloud",
    "google": "Google Cloud",
    "google cloud": "Google Cloud",
    "google cloud platform": "Google Cloud",
}
UNTAGGED = "(untagged)"
NONE = "(none)"


def canonical(key: str, value: str) -> str:
    """The value a filter means: provider aliases resolved, then compared case-insensitively."""
    value = value.strip()
    if key == "provider":
        value = PROVIDER_ALIASES.get(value.casefold(), value)
    return value


def folded(key: str, value: str) -> str:
    """The form compared (SQL compares `lower(column)` with this)."""
    return canonical(key, value).casefold()


def matches(key: str, wanted: str, actual: str | None) -> bool:
    return actual is not None and actual.casefold() == folded(key, wanted)


def no_match_hint(key: str, value: str, known: Iterable[str | None]) -> str:
    """One line for an empty result: the values that exist for `key`."""
    values = sorted({v for v in known if v}, key=str.casefold)
    shown = ", ".join(values[:12]) + (f", ... ({len(values)} values)" if len(values) > 12 else "")
    return f"nothing matches {key}={value}" + (f"; known values: {shown}" if values else "")


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
