"""How filter values match, for every read: case-insensitively, with the short provider names
people type (`aws`, `azure`, `gcp`) for the `ProviderName` values the exports carry (`AWS`,
`Microsoft`, `Google Cloud`). When nothing matches, a read says which values exist."""

from __future__ import annotations

from collections.abc import Iterable

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
