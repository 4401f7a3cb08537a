"""The model engine: many daily series in, forecasts with 80/95 % intervals out.

Per series, a small statsforecast model set competes in rolling-origin cross-validation
(`cv_windows` origins, `cv_horizon` days each, scored by MASE against the in-sample weekly
naive error; each model is fitted once at the first origin and moved forward to the later
ones, which measured three times cheaper than refitting per origin at the same accuracy); the winner is refitted on the whole history and forecast with its own
80/95 % intervals, widened where its cross-validation errors say they are too narrow.
Series too short, or flat, get the seasonal-naive fallback of `domain.seasonal_naive`.

Runs in a worker process (CPU heavy); takes and returns plain floats so it pickles cheaply.
"""

from __future__ import annotations

import math
import os
import time
import warnings

from services.forecast.domain import Choice, RawForecast, clean_history, seasonal_naive

os.environ.setdefault("NIXTLA_ID_AS_COL", "1")

SEASON = 7
#: history a model needs before it competes: four weeks plus the cross-validation windows
MIN_WEEKS = 4
#: history kept for fitting: a year is plenty for daily cost and keeps fits fast
MAX_HISTORY = 364
LEVELS = (80, 95)
#: seconds spent inside statsforecast calls in this process (read by bench/forecast.py)
TIMINGS = {"statsforecast": 0.0}
Z = {80: 1.2816, 95: 1.96}


def model_set():
    """The competing models (aliases are what `model` stores)."""
    from statsforecast.models import MSTL, DynamicOptimizedTheta, SeasonalNaive, Theta

    return [
        SeasonalNaive(season_length=SEASON, alias="SeasonalNaive"),
        Theta(season_length=SEASON, alias="Theta"),
        DynamicOptimizedTheta(season_length=SEASON, alias="DynamicOptimizedTheta"),
        MSTL(season_length=SEASON, alias="MSTL"),
    ]


def fit_many(
    tasks: list[tuple[str, list[float]]],
    horizon: int,
    cv_windows: int = 2,
    cv_horizon: int = 7,
    models=None,
    chosen: dict[str, Choice] | None = None,
    robust: bool = True,
) -> dict[str, RawForecast]:
    """Forecast every series `horizon` days ahead; keyed like `tasks`.

    `chosen` holds a recent model choice per series: those series skip cross-validation and
    only their chosen model is fitted (the daily refit); the others compete afresh.
    `robust` fits, cross-validates and calibrates on the history cleaned of anomalous days
    (`domain.clean_history`); `robust=False` is the earlier method, kept for the benchmark.
    """
    out: dict[str, RawForecast] = {}
    eligible: list[tuple[str, list[float]]] = []
    need = SEASON * MIN_WEEKS + cv_windows * cv_horizon
    for key, y in tasks:
        y = list(y[-MAX_HISTORY:])
        if robust:
            y = clean_history(y, SEASON).values
        if len(y) < need or max(y) == min(y):
            out[key] = seasonal_naive(y, horizon)
        else:
            eligible.append((key, y))
    if eligible:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.update(
                _fit_models(
                    eligible, horizon, cv_windows, cv_horizon, models or model_set(), chosen or {}
                )
            )
    return out


def _frame(series: list[tuple[str, list[float]]]):
    import numpy as np
    import pandas as pd

    ids, ds, ys = [], [], []
    for key, y in series:
        n = len(y)
        ids.append(np.full(n, key, dtype=object))
        ds.append(np.arange(-n + 1, 1, dtype=np.int64))  # every series ends at 0
        ys.append(np.asarray(y, dtype=float))
    return pd.DataFrame(
        {"unique_id": np.concatenate(ids), "ds": np.concatenate(ds), "y": np.concatenate(ys)}
    )


def _select(df, history, names, models, cv_windows, cv_horizon) -> dict[str, Choice]:
    """Rolling-origin cross-validation of every model on every series of `df`."""
    import numpy as np
    import pandas as pd
    from statsforecast import StatsForecast

    t0 = time.process_time()
    cv = StatsForecast(models=models, freq=1, n_jobs=1).cross_validation(
        df=df,
        h=cv_horizon,
        n_windows=cv_windows,
        step_size=cv_horizon,
        level=list(LEVELS),
        refit=False,  # one fit per model at the first origin, later windows by `forward`
    )
    assert isinstance(cv, pd.DataFrame)  # statsforecast answers in the frame type it was given
    TIMINGS["statsforecast"] += time.process_time() - t0
    out: dict[str, Choice] = {}
    for key, part in cv.groupby("unique_id", sort=False):
        y = np.asarray(history[key])
        scale = _naive_scale(y[: len(y) - cv_windows * cv_horizon])
        actual = part["y"].to_numpy()
        scores = {}
        for name in names:
            pred = part[name].to_numpy()
            scores[name] = (
                float(np.nanmean(np.abs(actual - pred))) / scale
                if np.isfinite(pred).all()
                else math.inf
            )
        best = min(names, key=lambda n: (scores[n], names.index(n)))
        out[key] = Choice(
            best, scores[best], _widening(actual, part, best, 80), _widening(actual, part, best, 95)
        )
    return out


def _fit_models(series, horizon, cv_windows, cv_horizon, models, chosen) -> dict[str, RawForecast]:
    import numpy as np
    import pandas as pd
    from statsforecast import StatsForecast

    names = [m.alias for m in models]
    df = _frame(series)
    history = dict(series)
    choice = {k: c for k, c in chosen.items() if k in history and c.model in names}
    fresh = [k for k in history if k not in choice]
    if fresh:
        sub = df if len(fresh) == len(history) else df[df["unique_id"].isin(set(fresh))]
        choice.update(_select(sub, history, names, models, cv_windows, cv_horizon))
    out: dict[str, RawForecast] = {}
    for name in names:
        keys = [k for k, c in choice.items() if c.model == name]
        if not keys:
            continue
        model = next(m for m in models if m.alias == name)
        sub = df[df["unique_id"].isin(set(keys))]
        t0 = time.process_time()
        fc = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(
            df=sub, h=horizon, level=list(LEVELS)
        )
        TIMINGS["statsforecast"] += time.process_time() - t0
        assert isinstance(fc, pd.DataFrame)  # the frame type it was given
        for key, part in fc.groupby("unique_id", sort=False):
            y = history[key]
            mean = part[name].to_numpy(dtype=float)
            bands = {}
            for lv in LEVELS:
                lo = part[f"{name}-lo-{lv}"].to_numpy(dtype=float)
                hi = part[f"{name}-hi-{lv}"].to_numpy(dtype=float)
                k = choice[key].widen_80 if lv == 80 else choice[key].widen_95
                bands[lv] = (mean - (mean - lo) * k, mean + (hi - mean) * k)
            if not np.isfinite(mean).all():
                out[key] = seasonal_naive(y, horizon)
                continue
            floor = 0.0 if min(y) >= 0 else -math.inf
            out[key] = RawForecast(
                name,
                choice[key].cv_error,
                [float(v) for v in mean],
                [float(max(v, floor)) for v in bands[80][0]],
                [float(v) for v in bands[80][1]],
                [float(max(v, floor)) for v in bands[95][0]],
                [float(v) for v in bands[95][1]],
                choice[key],
            )
    for key, y in series:  # a model that produced nothing for a series
        out.setdefault(key, seasonal_naive(y, horizon))
    return out


def _naive_scale(y) -> float:
    import numpy as np

    if len(y) <= SEASON:
        return 1.0
    mae = float(np.mean(np.abs(y[SEASON:] - y[:-SEASON])))
    return mae if mae > 1e-9 else max(float(np.mean(np.abs(y))), 1e-9)


def _widening(actual, part, name: str, level: int) -> float:
    """Factor (>= 1) that makes the model's interval cover its own CV errors at `level`."""
    import numpy as np

    mean = part[name].to_numpy(dtype=float)
    lo = part[f"{name}-lo-{level}"].to_numpy(dtype=float)
    hi = part[f"{name}-hi-{level}"].to_numpy(dtype=float)
    half = np.maximum((hi - lo) / 2.0, 1e-9)
    if not (np.isfinite(half).all() and np.isfinite(mean).all()):
        return 1.0
    ratio = np.abs(actual - mean) / half
    needed = float(np.quantile(ratio, level / 100.0))
    return float(min(max(needed, 1.0), 4.0))
