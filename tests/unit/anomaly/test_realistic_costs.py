"""robust-seasonal on the nuisances of real daily cost (no sockets): idle days, billing
delays, month-start fees, holidays, drifts, calibrated sensitivity and taught feedback."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from services.anomaly.detectors import RobustSeasonalParams, episodes_from, robust_seasonal
from services.anomaly.domain import (
    DEFAULT_MONITOR,
    DailySeries,
    Raised,
    SeriesKey,
    evaluate_series,
    reconcile,
    taught,
)

D0 = date(2026, 1, 5)  # a Monday
KEY = SeriesKey("services", ("AWS", "111", "svc"), "USD")


def noisy(n: int, level: float = 300.0, sigma: float = 0.06, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * np.exp(rng.normal(0, sigma, n))


def kinds(
    y: np.ndarray, params: RobustSeasonalParams | None = None, **kw
) -> list[tuple[int, int, str]]:
    det = robust_seasonal(y, np.arange(len(y)) % 7, params, **kw)
    return [(e.start, e.end, e.kind) for e in det.episodes]


def test_busy_days_of_an_intermittent_service_are_not_anomalies():
    rng = np.random.default_rng(8)
    y = noisy(150, sigma=0.08)
    y[rng.random(150) < 1 / 3] = 0.0
    assert kinds(y) == []
    y[120] = 1500.0
    assert kinds(y) == [(120, 121, "spike")]


def test_zero_day_then_double_day_is_a_billing_delay_not_a_spike():
    y = noisy(80)
    y[60], y[61] = 0.0, y[60] + y[61]
    assert kinds(y) == [(60, 62, "billing-delay")]
    y[60] = np.nan  # the delayed day has no line at all
    assert kinds(y) == [(60, 62, "billing-delay")]


def test_a_billing_delay_finding_has_its_own_kind():
    y = noisy(80)
    y[60], y[61] = 0.0, y[60] + y[61]
    series = DailySeries(D0, tuple(Decimal(str(round(float(v), 2))) for v in y))
    found, _ = evaluate_series(KEY, DEFAULT_MONITOR, series)
    assert [(f.start, f.kind) for f in found] == [(D0 + timedelta(60), "billing-delay")]


def test_monthly_fee_billed_as_usage_alerts_at_most_on_its_first_month():
    n = 150
    y = noisy(n)
    starts = [i for i in range(n) if (D0 + timedelta(i)).day == 1]
    for i in starts:
        y[i] += 120.0  # +40 % on the 1st of every month
    assert kinds(y, month_start=[(D0 + timedelta(i)).day == 1 for i in range(n)]) == []


def test_a_fee_on_the_first_1st_on_a_weekend_is_judged_against_a_weekday():
    # the series' first 1st is a Sunday (weekends at 45 % of a weekday); a licence of half a
    # weekday doubles that Sunday, but a fee is money, not a share of the day
    n = 60
    y = noisy(n, sigma=0.05) * np.where(np.arange(n) % 7 >= 5, 0.45, 1.0)
    first = 34
    assert first % 7 == 6
    firsts = [i == first for i in range(n)]
    y[first] += 150.0
    assert kinds(y, month_start=firsts) == []
    y[first] += 300.0  # a weekend day plus one and a half weekdays: anomalous on any 1st
    assert kinds(y, month_start=firsts) == [(first, first + 1, "spike")]


def test_a_fee_learnt_on_sundays_is_expected_as_money_on_a_weekday_1st():
    # two 1sts on Sundays (weekends at 45 % of a weekday) carried a fee of 120, more than
    # doubling them; the third 1st is a Wednesday: expected is a weekday plus 120, not a weekday
    # doubled (which hid the second day of a level shift starting the day before)
    n = 100
    y = noisy(n, sigma=0.03) * np.where(np.arange(n) % 7 >= 5, 0.45, 1.0)
    firsts = [27, 55, 86]
    assert [i % 7 for i in firsts] == [6, 6, 2]
    y[firsts] += 120.0
    det = robust_seasonal(y, np.arange(n) % 7, month_start=[i in firsts for i in range(n)])
    assert det.episodes == []
    assert det.expected[86] == pytest.approx(300.0, rel=0.1)  # without the fee, as stored
    y[86] += 300.0  # the fee and a day's worth more: anomalous
    det = robust_seasonal(y, np.arange(n) % 7, month_start=[i in firsts for i in range(n)])
    assert [(e.start, e.kind) for e in det.episodes] == [(86, "spike")]


def test_holidays_of_the_calendar_cost_like_sundays():
    n = 120
    y = noisy(n, sigma=0.03) * np.where(np.arange(n) % 7 >= 5, 0.4, 1.0)
    holiday = 72  # a Wednesday
    y[holiday] *= 0.4
    both = RobustSeasonalParams(direction="both")
    assert [k for k in kinds(y, both) if k[0] == holiday]
    phase = np.arange(n) % 7
    phase[holiday] = 6
    det = robust_seasonal(y, phase, both)
    assert [e.start for e in det.episodes if e.start == holiday] == []


def test_a_drift_is_one_anomaly_of_its_own_kind_then_the_new_normal():
    y = noisy(150, sigma=0.05)
    climb = np.minimum(np.arange(150) - 90, 9).clip(0) / 9
    y += 180.0 * climb  # +60 % reached over 9 days, then kept
    found = kinds(y)
    assert len(found) == 1
    start, _, kind = found[0]
    assert kind == "drift" and 90 <= start <= 99


def test_a_level_shift_is_reported_once():
    y = noisy(150, sigma=0.05)
    y[80:] += 200.0
    found = kinds(y)
    assert [(s, k) for s, _, k in found] == [(80, "level-shift")]


def test_an_added_amount_on_a_weekly_series_is_one_level_shift():
    # +300 a day on weekdays of 300 and weekends of 135: weekends go from 45 % to 72 % of a
    # weekday, which the old history rescaled by one ratio does not show; once the new level has
    # three weeks of its own the model learns from those alone (it used to alert on a Sunday
    # about five weeks later)
    for seed in range(30):
        y = noisy(160, sigma=0.05, seed=seed) * np.where(np.arange(160) % 7 >= 5, 0.45, 1.0)
        y[70:] += 300.0
        assert [(s, k) for s, _, k in kinds(y)] == [(70, "level-shift")], seed


def test_the_history_before_an_added_amount_is_raised_by_that_amount():
    # right after the shift is confirmed, the next Sunday is expected at its old cost plus the
    # added 300 (435), not at the old Sunday scaled by the weekdays' ratio (about 270)
    y = noisy(120, sigma=0.03) * np.where(np.arange(120) % 7 >= 5, 0.45, 1.0)
    y[70:] += 300.0
    det = robust_seasonal(y, np.arange(120) % 7)
    assert [(e.start, e.kind) for e in det.episodes] == [(70, "level-shift")]
    assert 83 % 7 == 6 and det.expected[83] == pytest.approx(435.0, rel=0.1)
    grown = noisy(120, sigma=0.03) * np.where(np.arange(120) % 7 >= 5, 0.45, 1.0)
    grown[70:] *= 2.0  # growth: every day doubled, Sundays too
    det = robust_seasonal(grown, np.arange(120) % 7)
    assert det.expected[83] == pytest.approx(270.0, rel=0.1)


@pytest.mark.parametrize("level,threshold", [("low", 9.0), ("medium", 7.0), ("high", 5.0)])
def test_sensitivity_sets_the_threshold(level, threshold):
    assert RobustSeasonalParams(sensitivity=level).threshold == threshold
    assert RobustSeasonalParams().threshold == 7.0


def test_noise_alone_raises_nothing_at_the_default_sensitivity():
    for seed in range(20):
        assert kinds(noisy(150, sigma=0.12, seed=seed)) == [], seed


def _raised(start: int, verdict: str | None) -> Raised:
    return Raised(
        "anm-x",
        KEY,
        D0 + timedelta(start),
        D0 + timedelta(start + 1),
        Decimal(100),
        Decimal(300),
        "acknowledged",
        verdict,
    )


def test_no_raises_the_series_threshold_and_planned_rebases():
    assert taught(DEFAULT_MONITOR, []) is DEFAULT_MONITOR
    once = dict(taught(DEFAULT_MONITOR, [_raised(10, "no")]).params)
    assert once["threshold"] == pytest.approx(7.0 * 1.25)
    many = dict(taught(DEFAULT_MONITOR, [_raised(i, "no") for i in range(5)]).params)
    assert many["threshold"] == pytest.approx(7.0 * 1.25**3, abs=1e-3)
    planned = dict(taught(DEFAULT_MONITOR, [_raised(40, "planned")]).params)
    assert planned["rebase"] == ((D0 + timedelta(40)).isoformat(),)


def test_planned_change_is_the_new_baseline_at_once():
    y = noisy(150, sigma=0.05)
    y[80:] += 200.0
    rebase = np.zeros(150, dtype=bool)
    rebase[80] = True
    assert kinds(y, rebase=rebase) == []


def test_an_anomaly_with_feedback_is_not_resolved_when_the_taught_model_no_longer_finds_it():
    r = _raised(10, "no")
    assert reconcile(KEY, {}, [], [r], through=D0 + timedelta(30), evaluated_from=D0) == []


def test_a_resumed_walk_keeps_its_drift_evidence():
    y = noisy(150, sigma=0.05)
    climb = np.minimum(np.arange(150) - 90, 9).clip(0) / 9
    y += 180.0 * climb
    phase = np.arange(150) % 7
    whole = robust_seasonal(y, phase)
    for cut in (92, 95, 97):
        head = robust_seasonal(y[:cut], phase[:cut])
        resumed = robust_seasonal(y, phase, resume=head.state)
        assert [(e.start, e.end, e.kind) for e in resumed.episodes] == [
            (e.start, e.end, e.kind) for e in whole.episodes
        ]
        np.testing.assert_array_equal(resumed.scores, whole.scores)


def test_a_shift_whose_next_days_sit_just_under_the_threshold_is_one_anomaly():
    p = RobustSeasonalParams(threshold=8.0)
    y = np.full(20, 300.0)
    expected = np.full(20, 200.0)
    scores = np.array([0.0] * 8 + [9.5, 7.3, 6.0, 8.0, 8.0, 8.0, 8.0] + [0.2] * 5)
    assert [(e.start, e.end, e.kind) for e in episodes_from(y, expected, scores, p)] == [
        (8, 15, "level-shift")
    ]
    scores[10] = 0.5  # a normal day in between: two episodes
    assert len(episodes_from(y, expected, scores, p)) == 2
