"""The detectors on small synthetic series (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from services.anomaly.detectors import (
    DETECTORS,
    ContextSurpriseParams,
    MadParams,
    RobustSeasonalParams,
    context_surprise,
    mad,
    robust_seasonal,
    run_detector,
)


def weekly(
    n: int, seed: int = 1, weekend: float = 0.6, level: float = 100.0, noise: float = 3.0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    days = np.arange(n)
    return (level + rng.normal(0, noise, n)) * np.where(days % 7 >= 5, weekend, 1.0)


def test_spike_after_enough_history_is_one_episode():
    y = weekly(60)
    y[50] += 250
    det = robust_seasonal(y, np.arange(60) % 7)
    assert [(e.start, e.end, e.kind) for e in det.episodes] == [(50, 51, "spike")]


def test_no_alert_before_min_history_even_for_a_huge_value():
    y = weekly(20)
    y[10] += 10_000
    assert robust_seasonal(y, np.arange(20) % 7).episodes == []


def test_weekly_seasonality_alone_raises_nothing():
    y = weekly(120, weekend=0.3, noise=1.0)
    assert robust_seasonal(y, np.arange(120) % 7).episodes == []


def test_weekend_day_at_weekday_level_is_an_anomaly_only_with_seasonality():
    y = weekly(70, weekend=0.3, noise=1.0)
    y[61] = 100.0  # a Saturday (61 % 7 == 5) costing as much as a weekday
    seasonal = robust_seasonal(y, np.arange(70) % 7)
    assert [e.start for e in seasonal.episodes] == [61]


def test_steady_growth_is_not_an_anomaly():
    n = 150
    rng = np.random.default_rng(3)
    y = 100 * 1.01 ** np.arange(n) + rng.normal(0, 2, n)
    assert robust_seasonal(y, np.arange(n) % 7).episodes == []


def test_level_shift_is_one_episode_then_the_new_level_is_normal():
    y = weekly(90, noise=2.0)
    y[40:] *= 1.8
    det = robust_seasonal(y, np.arange(90) % 7)
    assert len(det.episodes) == 1
    ep = det.episodes[0]
    assert (ep.start, ep.kind) == (40, "level-shift")
    confirm = RobustSeasonalParams().confirm_days
    assert confirm - 1 <= ep.end - ep.start <= confirm


def test_drops_do_not_alert_in_the_default_up_direction_but_do_in_both():
    y = weekly(60, weekend=1.0)
    y[50] = 1.0
    assert robust_seasonal(y, np.arange(60) % 7).episodes == []
    both = robust_seasonal(y, np.arange(60) % 7, RobustSeasonalParams(direction="both"))
    assert [(e.start, e.direction) for e in both.episodes] == [(50, -1)]


def test_zero_heavy_series_alerts_only_on_a_real_jump():
    rng = np.random.default_rng(5)
    y = np.where(rng.random(80) < 0.7, 0.0, rng.uniform(1, 4, 80))
    assert robust_seasonal(y, np.arange(80) % 7).episodes == []
    y[70] = 500.0
    assert [e.start for e in robust_seasonal(y, np.arange(80) % 7).episodes] == [70]


def test_missing_days_are_skipped_not_read_as_zero():
    y = weekly(60)
    y[30:40] = np.nan  # late data
    assert robust_seasonal(y, np.arange(60) % 7).episodes == []


def test_small_absolute_excess_is_ignored():
    y = np.full(40, 0.10) + np.random.default_rng(2).normal(0, 0.001, 40)
    y[35] = 0.60  # +500 %, but 50 cents
    assert robust_seasonal(y, np.arange(40) % 7).episodes == []


def test_mad_baseline_finds_a_spike():
    y = weekly(50, weekend=1.0)
    y[45] += 200
    assert [e.start for e in mad(y, None, MadParams()).episodes] == [45]


def test_registry_entries_are_kebab_case_and_forbid_unknown_parameters():
    for name, entry in DETECTORS.items():
        assert name == entry.name and name.replace("-", "").isalnum() and name.lower() == name
        with pytest.raises(ValueError):
            entry.params(no_such_parameter=1)
    with pytest.raises(ValueError, match="unknown detector"):
        run_detector("nope", [1.0], None)


def test_resumed_walk_gives_the_same_result_as_a_full_one():
    y = weekly(120, noise=4.0)
    y[50] += 300
    y[80:] *= 1.7
    phase = np.arange(120) % 7
    full = robust_seasonal(y, phase)
    state = robust_seasonal(y[:70], phase[:70]).state
    resumed = robust_seasonal(y, phase, resume=state)
    assert np.allclose(full.expected, resumed.expected, equal_nan=True)
    assert np.allclose(full.scores, resumed.scores)
    assert [(e.start, e.end, e.kind) for e in full.episodes] == [
        (e.start, e.end, e.kind) for e in resumed.episodes
    ]
    assert len(resumed.state.y) == 120


def test_state_of_a_changed_prefix_is_not_reused_and_provisional_steps_are_not_kept():
    y = weekly(60)
    state = robust_seasonal(y[:40], np.arange(40) % 7).state
    changed = y.copy()
    changed[10] += 500  # a restated early day
    assert not state.continues(changed)
    kept = robust_seasonal(y, np.arange(60) % 7, keep=59).state
    assert len(kept.y) == 59


def test_level_shift_with_one_quiet_day_is_still_one_episode():
    y = weekly(90, noise=2.0, weekend=1.0)
    y[40:] *= 1.8
    y[43] /= 1.8  # one day at the old level inside the shift
    det = robust_seasonal(y, np.arange(90) % 7)
    assert [(e.start, e.kind) for e in det.episodes] == [(40, "level-shift")]


def test_walk_resumes_from_the_first_changed_step_with_identical_results():
    y = weekly(100, noise=4.0)
    y[30] += 300
    phase = np.arange(100) % 7
    state = robust_seasonal(y[:90], phase[:90]).state
    late = y.copy()
    late[85] += 400  # a late line lands on an already evaluated day
    full = robust_seasonal(late, phase)
    resumed = robust_seasonal(late, phase, resume=state)
    assert state.common_prefix(late) == 85
    assert np.allclose(full.expected, resumed.expected, equal_nan=True)
    assert np.allclose(full.scores, resumed.scores)
    assert (
        [(e.start, e.end) for e in full.episodes]
        == [(e.start, e.end) for e in resumed.episodes]
        == [(30, 31), (85, 86)]
    )


# context-surprise: the streaming detector for dense metrics (NAB in bench/anomaly_accuracy.py)

CTX = ContextSurpriseParams(min_history=300, direction="both")


def rhythm(n: int, seed: int = 0, period: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50 + 20 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 1, n)


def test_context_surprise_is_causal_appending_values_never_changes_earlier_scores():
    y = rhythm(2000, seed=4)
    y[1200] += 60
    full = context_surprise(y, None, CTX)
    for cut in (250, 301, 900, 1201, 1700):
        head = context_surprise(y[:cut], None, CTX)
        np.testing.assert_array_equal(head.scores, full.scores[:cut])
        np.testing.assert_array_equal(head.expected, full.expected[:cut])


def test_context_surprise_detects_a_spike_on_a_regular_rhythm():
    y = rhythm(2000)
    y[1500] += 60
    det = context_surprise(y, None, CTX)
    assert np.flatnonzero(np.abs(det.scores) >= CTX.threshold).tolist() == [1500]
    assert [(e.start, e.end, e.direction) for e in det.episodes] == [(1500, 1501, 1)]


def test_context_surprise_detects_a_rhythm_change_that_stays_inside_the_usual_range():
    y = rhythm(2000)
    y[1500:] = rhythm(500, seed=1, period=17)
    alerts = np.flatnonzero(np.abs(context_surprise(y, None, CTX).scores) >= CTX.threshold)
    assert len(alerts) and 1500 <= alerts[0] < 1530


@pytest.mark.parametrize("seed", range(3))
def test_context_surprise_stays_quiet_on_flat_or_bounded_noisy_series(seed):
    rng = np.random.default_rng(seed)
    for y in (np.full(3000, 7.0), 40 + rng.uniform(0, 10, 3000), rhythm(3000, seed=seed)):
        det = context_surprise(y, None, CTX)
        assert np.abs(det.scores).max() < CTX.threshold
        assert det.episodes == []


def test_context_surprise_scores_nothing_while_learning_and_skips_missing_steps():
    y = rhythm(1000)
    y[[400, 401, 700]] = np.nan
    det = context_surprise(y, None, CTX)
    assert not det.scores[:300].any()
    assert det.scores[[400, 401, 700]].tolist() == [0.0, 0.0, 0.0]
    assert not context_surprise(y[:300], None, CTX).scores.any()


def test_context_surprise_rests_after_an_alert():
    y = rhythm(2000)
    y[1500] += 60
    y[1530] += 100  # beyond everything seen, but inside the rest (min_history / 5 = 60 steps)
    y[1700] += 150
    alerts = np.flatnonzero(np.abs(context_surprise(y, None, CTX).scores) >= CTX.threshold)
    assert alerts.tolist() == [1500, 1700]


def test_context_surprise_parameters_refuse_unknown_keys():
    with pytest.raises(ValidationError):
        ContextSurpriseParams(no_such_parameter=1)
    with pytest.raises(ValidationError):
        run_detector("context-surprise", rhythm(400), None, {"window_size": 10})
    assert DETECTORS["context-surprise"].params is ContextSurpriseParams
