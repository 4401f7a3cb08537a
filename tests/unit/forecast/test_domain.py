"""Pure forecasting domain: series, seasonal naive, recurring schedule, projections."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from decimal import Decimal

from services.forecast.domain import (
    RECURRING,
    USAGE,
    DayCost,
    SeriesKey,
    assemble,
    build_series,
    dimension_sets,
    month_bounds,
    project_period,
    quarter_bounds,
    recurring_schedule,
    seasonal_naive,
    select_tag_keys,
    to_money,
    trained_through,
)

KEY = SeriesKey("service", (("service", "EC2"),), "USD")


def test_domain_imports_no_io_frameworks():
    import subprocess

    code = (
        "import sys, services.forecast.domain, services.forecast.domain_budgets\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'faststream', 'asyncpg', 'opentelemetry'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_series_are_zero_filled_and_split_recurring_from_usage():
    d0 = date(2024, 3, 1)
    rows = [
        DayCost(KEY, d0, USAGE, Decimal("3.5")),
        DayCost(KEY, d0 + timedelta(days=3), USAGE, Decimal("1")),
        DayCost(KEY, d0 + timedelta(days=3), RECURRING, Decimal("100")),
        DayCost(KEY, d0 + timedelta(days=9), USAGE, Decimal("7")),  # after trained_through: ignored
    ]
    [s] = build_series(rows, d0 + timedelta(days=4))
    assert s.usage == [3.5, 0.0, 0.0, 1.0, 0.0]
    assert s.recurring == {d0 + timedelta(days=3): Decimal("100")}
    assert s.actual[d0 + timedelta(days=3)] == Decimal("101")


def test_fingerprint_changes_only_when_data_changes():
    d0 = date(2024, 3, 1)
    a = build_series([DayCost(KEY, d0, USAGE, Decimal("1.00"))], d0)[0]
    b = build_series([DayCost(KEY, d0, USAGE, Decimal("1.00"))], d0)[0]
    c = build_series([DayCost(KEY, d0, USAGE, Decimal("1.01"))], d0)[0]
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_seasonal_naive_repeats_the_last_week_with_widening_intervals():
    y = [float(10 + (i % 7)) for i in range(28)]
    y[-1] += 0.5
    f = seasonal_naive(y, 14)
    assert f.model == "SeasonalNaive"
    assert f.mean[:7] == y[-7:] and f.mean[7:] == y[-7:]
    width_first = f.hi_95[0] - f.lo_95[0]
    width_second_week = f.hi_95[7] - f.lo_95[7]
    assert 0 < width_first < width_second_week
    assert all(
        lo95 <= lo80 <= m <= hi80 <= hi95
        for lo95, lo80, m, hi80, hi95 in zip(f.lo_95, f.lo_80, f.mean, f.hi_80, f.hi_95)
    )


def test_short_series_fall_back_to_their_mean_and_never_go_negative():
    f = seasonal_naive([0.0, 4.0], 3)
    assert f.model == "Naive" and f.mean == [2.0, 2.0, 2.0]
    assert min(f.lo_95) == 0.0 and f.hi_95[0] > 2.0


def test_recurring_fee_repeats_on_its_day_of_month():
    charges = {date(2024, 1, 31): Decimal("50"), date(2024, 2, 15): Decimal("10")}
    future = recurring_schedule(charges, date(2024, 2, 20), 45)
    assert future[date(2024, 2, 29)] == Decimal("50")  # the 31st falls on the month's last day
    assert future[date(2024, 3, 15)] == Decimal("10")
    assert future[date(2024, 3, 31)] == Decimal("50")
    assert sum(future.values()) == Decimal("110")


def test_assembled_forecast_adds_scheduled_fees_to_usage():
    d0 = date(2024, 1, 1)
    rows = [DayCost(KEY, d0 + timedelta(days=i), USAGE, Decimal("2")) for i in range(31)]
    rows.append(DayCost(KEY, d0, RECURRING, Decimal("30")))
    [s] = build_series(rows, date(2024, 1, 31))
    f = assemble(s, seasonal_naive(s.usage, 10))
    assert f.trained_through == date(2024, 1, 31)
    assert f.points[0].day == date(2024, 2, 1) and f.points[0].mean == Decimal("32.0000")
    assert f.points[1].mean == Decimal("2.0000")


def test_month_end_projection_is_actual_to_date_plus_remainder():
    d0 = date(2024, 1, 1)
    rows = [DayCost(KEY, d0 + timedelta(days=i), USAGE, Decimal("1.10")) for i in range(20)]
    [s] = build_series(rows, date(2024, 1, 20))
    f = assemble(s, seasonal_naive(s.usage, 30))
    p = project_period(s.actual, f, month_bounds(date(2024, 1, 21)))
    assert p.actual_to_date == Decimal("22.00")
    assert p.forecast_remainder == Decimal("12.1000")
    assert p.projected == Decimal("34.1000")
    assert p.lo_95 <= p.projected <= p.hi_95


def test_periods_and_trained_through():
    assert month_bounds(date(2024, 12, 5)) == (date(2024, 12, 1), date(2025, 1, 1))
    assert quarter_bounds(date(2024, 11, 5)) == (date(2024, 10, 1), date(2025, 1, 1))
    assert quarter_bounds(date(2024, 2, 29)) == (date(2024, 1, 1), date(2024, 4, 1))
    assert trained_through(date(2024, 5, 1), date(2030, 1, 1)) == date(2024, 5, 1)
    assert trained_through(date(2024, 5, 1), date(2024, 5, 1)) == date(2024, 4, 30)
    assert trained_through(None, date(2024, 5, 1)) is None


def test_dimension_sets_and_tag_keys():
    assert ("provider", "account", "service") in dimension_sets([])
    assert ("tag:team",) in dimension_sets(["team"])
    assert select_tag_keys(["b", "a", "c"], "*", 2) == ["a", "b"]
    assert select_tag_keys(["b"], "", 5) == []
    assert select_tag_keys(["b"], "team, env", 5) == ["env", "team"]


def test_money_is_decimal_and_finite():
    assert to_money(1.23456) == Decimal("1.2346")
    assert to_money(float("nan")) == Decimal("0.0000")
