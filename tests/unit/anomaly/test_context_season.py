"""context-surprise's seasonal distance (`season`): a value ordinary for the stream but not for
its time of the week (a weekday that behaves like a Sunday), causal like the rest."""

from __future__ import annotations

import numpy as np

from services.anomaly.detectors import ContextSurpriseParams, context_surprise

WEEK = 24 * 7  # hourly steps


def weekly(n: int, seed: int = 0) -> np.ndarray:
    """A daily cycle that is strong on weekdays and nearly flat at weekends, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    weekday = (t // 24) % 7 < 5
    return 50 + 20 * np.sin(2 * np.pi * t / 24) * np.where(weekday, 1.0, 0.2) + rng.normal(0, 1, n)


def holiday(n: int = WEEK * 8) -> tuple[np.ndarray, int]:
    y = weekly(n)
    t0 = WEEK * 6 + 24 * 2  # a Wednesday of the seventh week runs like a Sunday
    t = np.arange(t0, t0 + 24)
    y[t0 : t0 + 24] = (
        50 + 4 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(3).normal(0, 1, 24)
    )
    return y, t0


def alerts(y: np.ndarray, season: int | None) -> list[int]:
    p = ContextSurpriseParams(min_history=300, direction="both", season=season)
    return np.flatnonzero(np.abs(context_surprise(y, None, p).scores) >= p.threshold).tolist()


def test_a_weekday_that_runs_like_a_sunday_is_found_only_against_the_week():
    y, t0 = holiday()
    assert alerts(y, None) == []  # every value is inside the usual range, in a known rhythm
    found = alerts(y, WEEK)
    assert len(found) == 1 and t0 <= found[0] < t0 + 24


def test_the_seasonal_distance_stays_quiet_on_an_ordinary_weekly_stream():
    for seed in range(3):
        assert alerts(weekly(WEEK * 8, seed=seed), WEEK) == []


def test_the_seasonal_distance_is_causal():
    y, _ = holiday()
    p = ContextSurpriseParams(min_history=300, direction="both", season=WEEK)
    full = context_surprise(y, None, p).scores
    for cut in (400, WEEK * 3 + 10, WEEK * 4 + 5, WEEK * 6 + 60):
        np.testing.assert_array_equal(context_surprise(y[:cut], None, p).scores, full[:cut])
