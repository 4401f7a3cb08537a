"""Budget thresholds, periods and their anomaly form."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.forecast.budgets import to_anomaly
from services.forecast.domain import Projection
from services.forecast.domain_budgets import Budget, breaches, parse_thresholds

BUDGET = Budget("team-a", Decimal("1000"), "USD", "monthly", {"service": "EC2", "tag:team": "a"})


def projection(actual: str, projected: str) -> Projection:
    a, p = Decimal(actual), Decimal(projected)
    return Projection(date(2024, 5, 1), date(2024, 6, 1), a, p - a, p, p - 10, p + 10)


def test_thresholds_on_actual_and_forecast_spend():
    found = breaches(BUDGET, projection("850", "1200"))
    assert {(b.kind, b.percent) for b in found} == {
        ("actual", Decimal(80)),
        ("forecast", Decimal(100)),
    }
    assert breaches(BUDGET, projection("100", "500")) == []


def test_alert_identity_is_per_budget_period_and_threshold():
    [a] = [b for b in breaches(BUDGET, projection("850", "900")) if b.kind == "actual"]
    [again] = [b for b in breaches(BUDGET, projection("870", "950")) if b.kind == "actual"]
    assert a.alert_id == again.alert_id  # more spend in the same period: the same alert
    later = Projection(
        date(2024, 6, 1),
        date(2024, 7, 1),
        Decimal(850),
        Decimal(0),
        Decimal(850),
        Decimal(850),
        Decimal(850),
    )
    assert breaches(BUDGET, later)[0].alert_id != a.alert_id


def test_quarterly_budget_periods():
    q = Budget("q", Decimal(1), "USD", "quarterly")
    assert q.bounds(date(2024, 8, 31)) == (date(2024, 7, 1), date(2024, 10, 1))
    assert BUDGET.bounds(date(2024, 8, 31)) == (date(2024, 8, 1), date(2024, 9, 1))


def test_breach_becomes_a_budget_anomaly():
    [b] = [
        x
        for x in breaches(BUDGET, projection("1100", "1300"))
        if x.kind == "actual" and x.percent == 100
    ]
    anomaly = to_anomaly(b, datetime(2024, 5, 20, tzinfo=UTC))
    assert anomaly.detector == "budget"
    assert anomaly.severity == "critical"
    assert anomaly.dimension == {"x_Budget": "team-a", "ServiceName": "EC2", "Tags.team": "a"}
    assert anomaly.expected_cost == Decimal("1000") and anomaly.actual_cost == Decimal("1100")
    assert anomaly.impact == Decimal("100") and anomaly.impact_pct == Decimal("10.00")
    assert anomaly.window_start == datetime(2024, 5, 1, tzinfo=UTC)
    assert anomaly.monitor == "budget:team-a:actual:100"


def test_threshold_parsing():
    assert parse_thresholds(["actual:80", "forecast:100%"]) == (
        ("actual", Decimal(80)),
        ("forecast", Decimal(100)),
    )
    for bad in ("actual", "spend:80", "actual:x", "forecast:-1"):
        with pytest.raises(ValueError):
            parse_thresholds([bad])
