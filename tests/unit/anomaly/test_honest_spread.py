"""robust-seasonal's spread and evidence on noisy daily cost (no sockets): the noise a few
weeks of fitted weekday factors hide, drifts judged rather than followed, billing delays
whose catch-up alone would not alert, and spikes of two days each just under the threshold."""

from __future__ import annotations

import numpy as np

from services.anomaly.detectors import RobustSeasonalParams, robust_seasonal


def noisy(n: int, level: float = 300.0, sigma: float = 0.12, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * np.exp(rng.normal(0, sigma, n))


def episodes(y: np.ndarray) -> list[tuple[int, int, str]]:
    det = robust_seasonal(y, np.arange(len(y)) % 7)
    return [(e.start, e.end, e.kind) for e in det.episodes]


def test_noise_of_a_series_without_weekly_shape_raises_nothing_in_its_first_weeks():
    # 12 % log-normal noise and no weekly pattern: weekday factors fitted to three weeks used
    # to read a third of the noise and alarm on ordinary days
    alarms = [e for seed in range(40) for e in episodes(noisy(60, seed=seed))]
    assert alarms == []


def test_a_drift_is_one_anomaly_reported_during_its_climb():
    y = noisy(140, sigma=0.08, seed=3)
    climb = 300 * 0.8 * (np.arange(10) + 1) / 10  # +80 % over 10 days, then kept
    y[100:110] += climb
    y[110:] += climb[-1]
    found = [e for e in episodes(y) if e[2] != "billing-delay"]
    assert len(found) == 1
    start, end, _ = found[0]
    assert 100 <= start <= 111  # reported before the climb has ended (plus a day)


def test_a_catch_up_under_the_threshold_is_still_a_billing_delay():
    # 13 % noise: the double day alone sits below the alert level, yet a zero day followed by
    # two days' worth is a data-quality event
    y = noisy(90, sigma=0.13, seed=11)
    y[70], y[71] = 0.0, y[70] + y[71]
    assert episodes(y) == [(70, 72, "billing-delay")]


def test_a_two_day_spike_each_day_under_the_threshold_is_found():
    base = noisy(100, sigma=0.08, seed=5)
    one = base.copy()
    one[80] += 300 * 0.6  # +60 % on one day: about 6 spreads, under the default threshold (7)
    assert episodes(one) == []
    two = one.copy()
    two[81] += 300 * 0.6  # the same on the next day: together they are anomalous
    det = robust_seasonal(two, np.arange(100) % 7)
    assert 2 < det.scores[80] < RobustSeasonalParams().threshold
    assert [(e.start, e.end) for e in det.episodes] == [(81, 82)]


def test_a_fee_on_the_1st_of_an_idle_series_is_learnt_from_an_idle_1st():
    # an intermittent service with a fee billed as usage on each 1st (every 30 days here); the
    # second 1st happened to be idle, so that day cost only the fee
    rng = np.random.default_rng(2)
    y = noisy(130, sigma=0.05, seed=2)
    y[rng.random(130) < 1 / 3] = 0.0
    firsts = np.zeros(130, dtype=bool)
    firsts[[10, 40, 70, 100]] = True
    y[[10, 70, 100]] = 300 * np.exp(rng.normal(0, 0.05, 3))  # busy 1sts
    y[40] = 0.0
    y[firsts] += 180.0  # the fee: +60 % of a busy day
    det = robust_seasonal(y, np.arange(130) % 7, month_start=firsts)
    assert [e for e in det.episodes if e.kind != "billing-delay"] == []
