"""The pure rules of the overview and of the choice between aggregate and lines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from schemas.reads.pricing import parse_filter
from services.api.costs import aggregate_allows
from services.api.routes.insights import budget_state, month_to_date, movers


def test_month_to_date_runs_from_the_first_to_tomorrow_in_utc():
    start, end = month_to_date(datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC))


def test_budget_state_says_over_forecast_over_or_ok():
    base = {"amount": Decimal("100"), "actual_to_date": Decimal("50"), "projected": Decimal("90")}
    assert budget_state(base) == "ok"
    assert budget_state({**base, "projected": Decimal("120")}) == "forecast-over"
    assert budget_state({**base, "actual_to_date": Decimal("100")}) == "over"
    assert budget_state({**base, "actual_to_date": None, "projected": None}) == "ok"


def test_movers_are_the_largest_changes_per_currency_never_added_across():
    now = [
        {"group": {"service": "ec2"}, "cost": "150", "currency": "USD"},
        {"group": {"service": "s3"}, "cost": "10", "currency": "USD"},
        {"group": {"service": "ec2"}, "cost": "5", "currency": "EUR"},
    ]
    before = [
        {"group": {"service": "ec2"}, "cost": "100", "currency": "USD"},
        {"group": {"service": "rds"}, "cost": "80", "currency": "USD"},
        {"group": {"service": "s3"}, "cost": "10", "currency": "USD"},
    ]
    out = movers(now, before, "service")
    assert [(m["service"], m["currency"], m["change"]) for m in out] == [
        ("rds", "USD", Decimal("-80")),
        ("ec2", "USD", Decimal("50")),
        ("ec2", "EUR", Decimal("5")),
    ]
    assert out[1]["changePct"] == Decimal("50.0") and out[2]["changePct"] is None


def test_the_aggregate_answers_day_aligned_windows_on_the_columns_it_keeps():
    midnight = datetime(2026, 11, 1, tzinfo=UTC)
    assert aggregate_allows(
        ["service", "account", "daily"], [parse_filter("provider=AWS")], midnight, None
    )
    assert not aggregate_allows(["resource"], [], midnight, None)
    assert not aggregate_allows([], [parse_filter("tag:team=a")], None, None)
    assert not aggregate_allows([], [], datetime(2026, 11, 1, 6, tzinfo=UTC), None)
