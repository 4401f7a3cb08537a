"""Forecast ranges that survive a spike: cleaning, level shifts, calibration, reconciliation."""

from __future__ import annotations

import random

from services.forecast.domain import (
    RawForecast,
    SeriesKey,
    clean_history,
    reconcile_bottom_up,
)
from services.forecast.engine import fit_many


def weekly(n: int, level: float, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [level * (1.2 if i % 7 < 5 else 0.5) + rnd.gauss(0, level * 0.03) for i in range(n)]


def total_range(f: RawForecast, days: int = 30) -> tuple[float, float, float]:
    return sum(f.mean[:days]), sum(f.lo_95[:days]), sum(f.hi_95[:days])


def test_a_three_day_spike_at_the_end_is_cleaned_and_the_range_stays_within_half_to_twice():
    y = weekly(60, 100, 1)
    for i in (57, 58, 59):
        y[i] *= 8
    cleaned = clean_history(y)
    assert cleaned.flagged[57:] == [True, True, True] and sum(cleaned.flagged) == 3
    mean, lo, hi = total_range(fit_many([("s", y)], 30)["s"])
    assert lo >= mean / 2 and hi <= 2 * mean
    old_mean, old_lo, old_hi = total_range(fit_many([("s", y)], 30, robust=False)["s"])
    assert old_lo < old_mean / 2 or old_hi > 2 * old_mean  # the earlier method's useless range


def test_a_spike_inside_the_history_does_not_widen_the_range():
    y = weekly(90, 50, 2)
    y[40] += 2000
    mean, lo, hi = total_range(fit_many([("s", y)], 30)["s"])
    assert lo >= mean / 2 and hi <= 2 * mean
    assert 0.8 * 30 * 50 < mean < 1.2 * 30 * 50


def test_a_persistent_level_shift_becomes_the_new_level():
    y = weekly(90, 100, 3)
    y[-10:] = [v * 2 for v in y[-10:]]  # doubled for the last ten days: a shift, not a spike
    assert not any(clean_history(y).flagged[-10:])
    mean, _, _ = total_range(fit_many([("s", y)], 30)["s"])
    assert mean > 1.6 * 30 * 100 * (5 * 1.2 + 2 * 0.5) / 7


def test_a_volatile_history_is_called_volatile_and_a_steady_one_is_not():
    rnd = random.Random(4)
    assert clean_history([rnd.uniform(0, 200) for _ in range(60)]).volatile
    assert not clean_history(weekly(60, 100, 5)).volatile


def test_aggregates_are_reconciled_bottom_up_keeping_their_own_width():
    def key(dims, group):
        return SeriesKey(dims, tuple(sorted(group.items())), "USD")

    a = key("account,provider,service", {"account": "1", "provider": "AWS", "service": "EC2"})
    b = key("account,provider,service", {"account": "2", "provider": "AWS", "service": "S3"})
    aws = key("provider", {"provider": "AWS"})
    total = key("", {})

    def raw(m, w):
        return RawForecast(
            "Theta", 1.0, [m] * 3, [m - w] * 3, [m + w] * 3, [m - 2 * w] * 3, [m + 2 * w] * 3
        )

    raws = {
        a.as_text(): raw(10, 1),
        b.as_text(): raw(5, 1),
        aws.as_text(): raw(20, 3),
        total.as_text(): raw(30, 4),
    }
    out = reconcile_bottom_up([a, b, aws, total], raws)
    assert out[aws.as_text()].mean == [15, 15, 15] and out[total.as_text()].mean == [15, 15, 15]
    assert out[aws.as_text()].hi_95 == [21, 21, 21] and out[aws.as_text()].lo_95 == [9, 9, 9]
    assert out[a.as_text()] is raws[a.as_text()]


def test_the_newest_days_of_a_shift_that_began_before_the_last_week_are_kept():
    # the shift starts 15 days before the end: its first days agree with the days after them
    # and are kept; in the last week (only earlier weeks to compare with) one quieter day
    # (half the shift, within the noise) splits it into two short runs, which alone would look
    # like spikes still going on
    y = weekly(60, 100, 6)
    y[45:] = [v * 1.3 for v in y[45:]]
    y[56] *= 1.15 / 1.3
    assert not any(clean_history(y).flagged)
    mean, _, _ = total_range(fit_many([("s", y)], 28)["s"])
    assert mean > 1.2 * 28 * 100 * (5 * 1.2 + 2 * 0.5) / 7


def test_a_spike_at_the_end_after_a_steady_week_is_still_cleaned_when_the_shift_rule_applies():
    y = weekly(60, 100, 7)
    y[-2:] = [v * 5 for v in y[-2:]]
    assert clean_history(y).flagged[-2:] == [True, True]
