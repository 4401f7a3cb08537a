"""Pricing rules: billed rows pass through; usage rows go through plugins, then price specs,
then an explicit "no price". Pure: standard library only, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

BILLED = "billed"
NONE = "none"


@dataclass(frozen=True, slots=True)
class UsageLine:
    """What pricing needs to know about one row to price it."""

    provider: str
    service: str
    currency: str
    quantity: Decimal | None = None
    unit: str | None = None
    sku: str | None = None
    resource_type: str | None = None
    region: str | None = None
    billed_cost: Decimal | None = None

    @property
    def sku_or_type(self) -> str | None:
        return self.sku or self.resource_type


@dataclass(frozen=True, slots=True)
class Quote:
    """A unit price from one source (a plugin or a spec file)."""

    source: str  # "plugin:<name>" or "spec:<file>"
    unit_price: Decimal
    currency: str
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class PriceDecision:
    """The outcome for one row: its price source and, unless `none`, its costs."""

    source: str
    billed_cost: Decimal | None
    effective_cost: Decimal | None
    unit_price: Decimal | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """One YAML price spec: a unit price for a provider/service and optionally a SKU/region."""

    file: str
    provider: str
    service: str
    unit_price: Decimal
    currency: str
    unit: str | None = None
    sku: str | None = None
    region: str | None = None

    def quote(self) -> Quote:
        return Quote(f"spec:{self.file}", self.unit_price, self.currency, self.unit)


def _norm(value: str | None) -> str | None:
    return value.strip().lower() if value else None


@dataclass
class SpecBook:
    """Price specs indexed for lookup: exact SKU (region, then any region), then the
    service default (region, then any region), then nothing."""

    _index: dict[tuple[str | None, ...], PriceSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, specs: Iterable[PriceSpec]) -> SpecBook:
        book = cls()
        for spec in specs:
            key = (_norm(spec.provider), _norm(spec.service), _norm(spec.sku), _norm(spec.region))
            book._index.setdefault(key, spec)
        return book

    def __len__(self) -> int:
        return len(self._index)

    def lookup(
        self, provider: str, service: str, sku: str | None, region: str | None
    ) -> PriceSpec | None:
        p, s, k, r = _norm(provider), _norm(service), _norm(sku), _norm(region)
        candidates: list[tuple[str | None, ...]] = []
        if k:
            candidates += [(p, s, k, r), (p, s, k, None)]
        candidates += [(p, s, None, r), (p, s, None, None)]
        for key in candidates:
            spec = self._index.get(key)
            if spec is not None:
                return spec
        return None


#: spellings of the same unit in bills, offer files and specs
_UNITS = {
    "hour": {"h", "hr", "hrs", "hour", "hours"},
    "gb-month": {"gb-mo", "gb-month", "gb-months", "gibibyte-month", "gb month", "gbmonth"},
    "gb": {"gb", "gigabyte", "gigabytes", "gib"},
    "request": {"request", "requests"},
}
_UNIT_OF = {spelling: unit for unit, spellings in _UNITS.items() for spelling in spellings}


def same_unit(a: str | None, b: str | None) -> bool:
    """False only when both units are known and differ (Hrs vs GB-Mo); unknown units pass."""
    if not a or not b:
        return True
    ua, ub = _UNIT_OF.get(a.strip().lower()), _UNIT_OF.get(b.strip().lower())
    return ua is None or ub is None or ua == ub


def cost_of(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """Quantity times unit price, exact (no float, no early rounding)."""
    return quantity * unit_price


def decide(
    line: UsageLine, plugin_quotes: Sequence[Quote | None], specs: SpecBook
) -> PriceDecision:
    """Price one row: billed -> first plugin quote -> spec -> explicit none, never a silent zero."""
    if line.billed_cost is not None:
        return PriceDecision(BILLED, line.billed_cost, None)
    if line.quantity is None:
        return PriceDecision(NONE, None, None, reason="no BilledCost and no ConsumedQuantity")
    mismatched: list[str] = []
    for quote in plugin_quotes:
        if quote is None:
            continue
        if quote.currency != line.currency or not same_unit(line.unit, quote.unit):
            mismatched.append(quote.source)
            continue
        cost = cost_of(line.quantity, quote.unit_price)
        return PriceDecision(quote.source, cost, cost, quote.unit_price)
    spec = specs.lookup(line.provider, line.service, line.sku_or_type, line.region)
    if spec is not None and spec.currency == line.currency and same_unit(line.unit, spec.unit):
        cost = cost_of(line.quantity, spec.unit_price)
        return PriceDecision(f"spec:{spec.file}", cost, cost, spec.unit_price)
    if spec is not None:
        mismatched.append(f"spec:{spec.file}")
    reason = "no plugin or spec prices this row"
    if mismatched:
        reason += (
            f" in {line.currency} per {line.unit or 'unit'} "
            f"(other currency or unit from {', '.join(mismatched)})"
        )
    return PriceDecision(NONE, None, None, reason=reason)


class ScopeVersions:
    """The highest version of each billing scope this process has stored.

    A chunk whose scopes all carry a version already stored changes no scope row and
    supersedes nothing, so it needs neither the scope upsert (which parses every record's
    JSON once more in PostgreSQL) nor the exclusive write that restatements take: on an
    import, that is every chunk after the first of each scope."""

    def __init__(self) -> None:
        self._stored: dict[str, int] = {}

    def fresh(self, scopes: dict[str, int]) -> dict[str, int]:
        """Those of `scopes` (scope -> highest version in a chunk) newer than any stored."""
        return {s: v for s, v in scopes.items() if v > self._stored.get(s, -1)}

    def stored(self, scopes: dict[str, int]) -> None:
        """Records that a chunk with `scopes` is committed (scope rows upserted)."""
        for scope, version in scopes.items():
            keep_highest(self._stored, scope, version)


def keep_highest(versions: dict[str, int], scope: str, version: int | None) -> None:
    """`versions[scope]` raised to `version` (no version counts as 0, as in the store)."""
    version = version or 0
    if version > versions.get(scope, -1):
        versions[scope] = version
