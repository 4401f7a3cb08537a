"""Billing delays on series with idle days (no sockets): a zero day is what such a series does
anyway, so the catch-up after it must be a day that would alert on its own and about two busy
days' worth; busy days after idle ones, and spikes that are not about a day's worth, stay
cost days."""

from __future__ import annotations

import numpy as np

from services.anomaly.detectors import RobustSeasonalParams, robust_seasonal

LEVEL = 300.0


def idle_series(
    n: int = 120, sigma: float = 0.08, seed: int = 6, busy: tuple[int, ...] = ()
) -> np.ndarray:
    """An intermittent service: about a third of its days cost nothing (zero lines); the days
    in `busy` are forced busy so a test can delay or raise them."""
    rng = np.random.default_rng(seed)
    y = LEVEL * np.exp(rng.normal(0, sigma, n))
    idle = rng.random(n) < 1 / 3
    idle[list(busy)] = False
    y[idle] = 0.0
    return y


def episodes(
    y: np.ndarray, phase: np.ndarray | None = None, params: RobustSeasonalParams | None = None
) -> list[tuple[int, int, str]]:
    det = robust_seasonal(y, np.arange(len(y)) % 7 if phase is None else phase, params)
    return [(e.start, e.end, e.kind) for e in det.episodes]


def test_a_zero_line_delay_on_an_idle_series_is_a_billing_delay_not_a_spike():
    y = idle_series(busy=(90, 91))
    assert episodes(y) == []
    y[91] += y[90]
    raised = y.copy()
    assert [k for *_, k in episodes(raised)] == ["spike"]  # the double day alone alerts
    y[90] = 0.0  # yesterday's lines arrived today, and yesterday has a zero line
    assert episodes(y) == [(90, 92, "billing-delay")]


def test_a_delayed_sunday_caught_up_on_monday_counts_sunday_at_its_weekend_cost():
    n = 126
    quiet = np.arange(n) % 7 >= 5
    y = idle_series(n, sigma=0.05, busy=(104, 105)) * np.where(quiet, 0.6, 1.0)
    assert (104 % 7, 105 % 7) == (6, 0)  # a Sunday, then a Monday
    assert episodes(y) == []
    y[105] += y[104]  # Monday + 0.6 of a weekday: 1.6 weekdays, not 2
    assert [k for *_, k in episodes(y)] == ["spike"]  # alone, the Monday alerts
    y[104] = 0.0
    assert episodes(y) == [(104, 106, "billing-delay")]


def test_busy_days_after_idle_days_are_never_billing_delays():
    # every busy day that follows an idle one is a chance to mistake it for a catch-up; with
    # 14 % noise and a young series' wide spread, a few of them sit 2-4 spreads up, within a
    # quarter of two days' worth (taken for catch-ups when the rule did not ask them to alert)
    for seed in range(40):
        assert episodes(idle_series(60, sigma=0.14, seed=seed)) == [], seed


def test_a_spike_much_larger_than_a_day_after_an_idle_day_is_a_spike():
    y = idle_series(busy=(91,))
    y[90] = 0.0
    y[91] += 3 * LEVEL  # four days' worth: no delay of one day explains it
    assert episodes(y) == [(91, 92, "spike")]


def test_a_three_day_spike_after_an_idle_day_is_found():
    y = idle_series(busy=(91, 92, 93))
    y[90] = 0.0
    y[91:94] += LEVEL  # a day's worth more on each of three days
    found = [(s, e) for s, e, k in episodes(y) if k == "spike"]
    # its first day reads like a catch-up; the next days cannot be one and are the anomaly
    assert len(found) == 1 and found[0][0] <= 92 and found[0][1] >= 93


def test_a_one_day_spike_of_one_days_worth_after_an_idle_day_reads_as_a_catch_up():
    # the known limit of the rule: on one day, a zero day then two days' worth is what both a
    # zero-line billing delay and a one-day spike of exactly a day's worth look like
    y = idle_series(busy=(91,))
    y[90] = 0.0
    y[91] += LEVEL
    assert episodes(y) == [(90, 92, "billing-delay")]


def test_a_missing_day_on_a_series_with_zero_line_idle_days_needs_no_alert_to_be_a_delay():
    # such a series reports its idle days as zero lines, so a day with no line at all is the
    # delay's own mark: a catch-up under the alert level is still recognised
    y = idle_series(sigma=0.13, busy=(90, 91))
    y[91] += y[90]
    y[90] = np.nan
    params = RobustSeasonalParams(threshold=30.0)  # nothing alerts on its own
    assert episodes(y, params=params) == [(90, 92, "billing-delay")]


def test_a_spike_of_two_thirds_of_a_day_after_an_idle_day_is_a_spike():
    # within a quarter of two days' worth (what a busy series' catch-up may be off by), but 5+
    # spreads short of it: on a series with idle days only the noise is allowed
    y = idle_series(sigma=0.04, busy=(91,))
    y[90] = 0.0
    y[91] += 2 * LEVEL / 3
    assert episodes(y) == [(91, 92, "spike")]
