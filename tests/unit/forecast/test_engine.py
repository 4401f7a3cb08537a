"""The model engine: model choice by cross-validation, fallback, intervals."""

from __future__ import annotations

import math

from services.forecast.engine import fit_many


def weekly(n: int, level: float, amp: float, seed: int) -> list[float]:
    import random

    rnd = random.Random(seed)
    return [
        max(0.0, level * (1 + amp * (1 if i % 7 < 5 else -2)) + rnd.gauss(0, level * 0.05))
        for i in range(n)
    ]


def test_long_series_get_a_cross_validated_model_and_ordered_intervals():
    tasks = [("a", weekly(84, 100, 0.2, 1)), ("b", weekly(84, 10, 0.0, 2))]
    out = fit_many(tasks, 21)
    for key in ("a", "b"):
        f = out[key]
        assert f.model in {"SeasonalNaive", "Theta", "DynamicOptimizedTheta", "MSTL"}
        assert f.cv_error is not None and math.isfinite(f.cv_error)
        assert len(f.mean) == 21
        for lo95, lo80, m, hi80, hi95 in zip(f.lo_95, f.lo_80, f.mean, f.hi_80, f.hi_95):
            assert 0 <= lo95 <= lo80 <= m <= hi80 <= hi95
    a = out["a"]
    assert min(a.mean[i] for i in range(21) if (84 + i) % 7 < 5) > max(
        a.mean[i] for i in range(21) if (84 + i) % 7 >= 5
    )


def test_short_and_flat_series_fall_back_to_seasonal_naive():
    out = fit_many([("short", weekly(20, 50, 0.1, 3)), ("flat", [5.0] * 90)], 7)
    assert out["short"].model == "SeasonalNaive" and out["short"].cv_error is None
    assert out["flat"].mean == [5.0] * 7


def test_a_recent_choice_skips_cross_validation():
    from services.forecast.engine import TIMINGS

    tasks = [("a", weekly(84, 100, 0.2, 1))]
    first = fit_many(tasks, 14)["a"]
    assert first.choice is not None and first.choice.model == first.model
    again = fit_many(tasks, 14, chosen={"a": first.choice})["a"]
    assert again.model == first.model and again.choice == first.choice
    assert again.mean == first.mean and again.hi_95 == first.hi_95
    forced = fit_many(tasks, 14, chosen={"a": type(first.choice)("Theta", 0.5, 2.0, 2.0)})["a"]
    assert forced.model == "Theta" and forced.cv_error == 0.5
    assert TIMINGS["statsforecast"] > 0
