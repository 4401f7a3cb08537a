"""Pure budget logic: the period being watched, its spend, and which thresholds it crossed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.forecast.domain import Projection, month_bounds, quarter_bounds

ACTUAL = "actual"
FORECAST = "forecast"
DEFAULT_THRESHOLDS = ((ACTUAL, Decimal(80)), (ACTUAL, Decimal(100)), (FORECAST, Decimal(100)))

#: FOCUS names of the scope keys, for the anomaly's `dimension`
FOCUS_NAMES = {
    "provider": "ProviderName",
    "account": "SubAccountId",
    "service": "ServiceName",
    "region": "RegionId",
    "resource": "ResourceId",
    "type": "ResourceType",
}


@dataclass(frozen=True)
class Budget:
    """An amount per period over a scope (a filter), with alert thresholds."""

    name: str
    amount: Decimal
    currency: str
    period: str  # monthly | quarterly
    scope: dict[str, str] = field(default_factory=dict)
    thresholds: tuple[tuple[str, Decimal], ...] = DEFAULT_THRESHOLDS

    def series_dims(self) -> str:
        return f"budget:{self.name}"

    def bounds(self, day: date) -> tuple[date, date]:
        """The budget period holding `day` ([start, end))."""
        return quarter_bounds(day) if self.period == "quarterly" else month_bounds(day)


@dataclass(frozen=True)
class BudgetBreached:
    """A threshold crossed in one period (raised once per budget, period and threshold)."""

    budget: Budget
    kind: str
    percent: Decimal
    period_start: date
    period_end: date
    limit: Decimal  # amount * percent / 100
    spend: Decimal  # actual to date, or projected to the period's end

    @property
    def alert_id(self) -> str:
        text = f"budget|{self.budget.name}|{self.period_start}|{self.kind}|{self.percent_text}"
        return "budget-" + hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def percent_text(self) -> str:
        return format(self.percent.normalize(), "f")

    @property
    def ratio(self) -> Decimal:
        """Spend as a share of the whole budget amount."""
        return self.spend / self.budget.amount

    def severity(self) -> str:
        if self.ratio >= 1:
            return "critical" if self.kind == ACTUAL else "high"
        return "medium" if self.ratio >= Decimal("0.9") else "low"

    def dimension(self) -> dict[str, str]:
        dim = {"x_Budget": self.budget.name}
        for key, value in sorted(self.budget.scope.items()):
            name = f"Tags.{key[4:]}" if key.startswith("tag:") else FOCUS_NAMES[key]
            dim[name] = value
        return dim


def breaches(budget: Budget, projection: Projection) -> list[BudgetBreached]:
    """Thresholds crossed by the period's actual spend or by its projection to the end."""
    out = []
    for kind, percent in budget.thresholds:
        limit = (budget.amount * percent / 100).quantize(Decimal("0.0001"))
        spend = projection.actual_to_date if kind == ACTUAL else projection.projected
        if spend >= limit:
            out.append(
                BudgetBreached(
                    budget,
                    kind,
                    percent,
                    projection.period_start,
                    projection.period_end,
                    limit,
                    spend,
                )
            )
    return out


def parse_thresholds(items: list[str]) -> tuple[tuple[str, Decimal], ...]:
    """`actual:80`, `forecast:100` -> thresholds; ValueError with the reason otherwise."""
    out = []
    for item in items:
        kind, sep, pct = item.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in (ACTUAL, FORECAST):
            raise ValueError(f"threshold {item!r}: expected actual:PERCENT or forecast:PERCENT")
        try:
            value = Decimal(pct.strip().rstrip("%"))
        except ArithmeticError as exc:
            raise ValueError(f"threshold {item!r}: {pct!r} is not a number") from exc
        if not value.is_finite() or value <= 0:
            raise ValueError(f"threshold {item!r}: the percent must be positive")
        out.append((kind, value))
    return tuple(sorted(set(out)))
