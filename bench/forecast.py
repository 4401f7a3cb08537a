"""Forecast accuracy and refit speed on a generated benchmark.

The benchmark (seeded, reproducible): N daily cost series of 180 days. Each series has
- a level drawn log-normally (median about 20 per day) and a linear trend of -30 % to +60 %
  over the 180 days,
- a weekly profile (weekdays above weekends by 0-60 %, or a random 7-day shape),
- multiplicative-ish noise of 5-25 % of the level, and in 20 % of series one level shift,
- in 40 % of series a monthly recurring fee (2-10 days of usage) on day 1 or 15 of the month,
  sent as ChargeFrequency=Recurring like a commitment fee.

Accuracy: rolling-origin evaluation at three origins (42, 28 and 14 days before the end),
14 days ahead each. MASE per series and origin is the mean absolute error over the in-sample
mean absolute error of the weekly naive forecast; the figure reported is our mean MASE over
the seasonal-naive forecast's mean MASE on the same total series (target <= 0.75), plus the
share of actual days inside our 95 % and 80 % intervals (target 0.90-0.98 for 95 %).

The spike-and-level-shift case: the same series, each with one 3-day spike (3-8 times the
day's cost) somewhere in the history before the first origin, and half of them with a level
shift (x0.5-x1.8) between day 100 and 170, so some origins see a shift only days old. Every
accuracy figure is printed for the earlier method (`fit_many(robust=False)`, fitted on the raw
history) and the current one (fitted and calibrated on the history cleaned of anomalies)
side by side.

Speed (CPU seconds of this process, interleaved in chunks of 250 series, so other work on a
shared machine does not tilt the comparison):
a refit of 1,000 series x 180 days through the service's pipeline (series building,
fingerprints, model choice by cross-validation, forecast, money conversion), beside bare
statsforecast doing the same model work on the same frame in the same run (`cross_validation`
of the model set with refit=False, then `forecast` of each series' chosen model, grouped by model). Then the
daily refit, which reuses the week's model choice (FINFOCUS_FORECAST_RESELECT_DAYS=7) and fits
only the chosen model, beside bare statsforecast fitting the same models. From both, the cost
of an account with 10,000 series per day (six daily refits and one re-selection a week).

Usage: .venv/bin/python bench/forecast.py [--series 1000] [--eval-series 200] [--seed 7] [--accuracy-only]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
warnings.simplefilter("ignore")

import numpy as np  # noqa: E402

from services.forecast import engine  # noqa: E402
from services.forecast.domain import (  # noqa: E402
    RECURRING,
    USAGE,
    Choice,
    DayCost,
    SeriesKey,
    assemble,
    build_series,
)

DAYS = 180
START = date(2024, 1, 1)
HORIZON = 14
ORIGINS = (42, 28, 14)  # days before the end


def generate(n: int, seed: int) -> list[tuple[np.ndarray, dict[int, float]]]:
    """(usage per day, {day index: recurring fee}) for n series."""
    rng = np.random.default_rng(seed)
    t = np.arange(DAYS)
    out = []
    for _ in range(n):
        level = math.exp(rng.normal(3.0, 0.8))
        trend = level * rng.uniform(-0.3, 0.6) / DAYS
        if rng.random() < 0.7:
            amp = rng.uniform(0.0, 0.6)
            profile = np.array([1 + amp] * 5 + [1 - amp] * 2)
        else:
            profile = rng.uniform(0.5, 1.5, 7)
        profile = profile / profile.mean()
        weekday = np.array([(START + timedelta(days=int(i))).weekday() for i in t])
        base = (level + trend * t) * profile[weekday]
        if rng.random() < 0.2:
            shift_at = int(rng.integers(30, DAYS - 30))
            base[shift_at:] *= rng.uniform(0.6, 1.5)
        noise = rng.normal(0, rng.uniform(0.05, 0.25) * level, DAYS)
        usage = np.maximum(base + noise, 0.0).round(2)
        fees: dict[int, float] = {}
        if rng.random() < 0.4:
            dom = int(rng.choice([1, 15]))
            amount = round(level * rng.uniform(2, 10), 2)
            fees = {i: amount for i in t if (START + timedelta(days=int(i))).day == dom}
        out.append((usage, fees))
    return out


def with_spikes_and_shifts(data, seed: int):
    """The spike-and-level-shift case built on `generate`'s series (see the docstring)."""
    rng = np.random.default_rng(seed + 1000)
    out = []
    for usage, fees in data:
        usage = usage.copy()
        if rng.random() < 0.5:
            at = int(rng.integers(100, 170))
            usage[at:] = (usage[at:] * rng.uniform(0.5, 1.8)).round(2)
        start = int(rng.integers(40, DAYS - max(ORIGINS) - 3))
        level = float(np.median(usage[max(0, start - 28) : start])) or 1.0
        usage[start : start + 3] += (level * rng.uniform(2, 7, 3)).round(2)
        out.append((usage, fees))
    return out


def day_costs(data, through: int) -> list[DayCost]:
    rows = []
    for i, (usage, fees) in enumerate(data):
        key = SeriesKey("service", (("service", f"svc-{i:05d}"),), "USD")
        for d in range(through):
            day = START + timedelta(days=d)
            rows.append(DayCost(key, day, USAGE, Decimal(str(usage[d]))))
            if d in fees:
                rows.append(DayCost(key, day, RECURRING, Decimal(str(fees[d]))))
    return rows


def pipeline(data, through: int, horizon: int, chosen=None, robust: bool = True):
    """What one refit of the service does, minus the database."""
    end = START + timedelta(days=through - 1)
    series = build_series(day_costs(data, through), end)
    for s in series:
        s.fingerprint()
    raws = engine.fit_many(
        [(s.key.as_text(), s.usage) for s in series], horizon, chosen=chosen, robust=robust
    )
    return series, [assemble(s, raws[s.key.as_text()]) for s in series]


def evaluate(data, robust: bool = True) -> dict[str, float]:
    ours, naive, cover95, cover80, n_points = [], [], 0, 0, 0
    models: dict[str, int] = {}
    for back in ORIGINS:
        through = DAYS - back
        _, forecasts = pipeline(data, through, HORIZON, robust=robust)
        for (usage, fees), f in zip(data, forecasts):
            total = usage + np.array([fees.get(d, 0.0) for d in range(DAYS)])
            hist = total[:through]
            scale = np.mean(np.abs(hist[7:] - hist[:-7])) or 1.0
            actual = total[through : through + HORIZON]
            mean = np.array([float(p.mean) for p in f.points[:HORIZON]])
            snaive = np.array([hist[through - 7 + (i % 7)] for i in range(HORIZON)])
            ours.append(np.mean(np.abs(actual - mean)) / scale)
            naive.append(np.mean(np.abs(actual - snaive)) / scale)
            lo95 = np.array([float(p.lo_95) for p in f.points[:HORIZON]])
            hi95 = np.array([float(p.hi_95) for p in f.points[:HORIZON]])
            lo80 = np.array([float(p.lo_80) for p in f.points[:HORIZON]])
            hi80 = np.array([float(p.hi_80) for p in f.points[:HORIZON]])
            cover95 += int(np.sum((actual >= lo95 - 1e-4) & (actual <= hi95 + 1e-4)))
            cover80 += int(np.sum((actual >= lo80 - 1e-4) & (actual <= hi80 + 1e-4)))
            n_points += HORIZON
            models[f.model] = models.get(f.model, 0) + 1
    return {
        "mase_ours": float(np.mean(ours)),
        "mase_snaive": float(np.mean(naive)),
        "ratio": float(np.mean(ours) / np.mean(naive)),
        "coverage95": cover95 / n_points,
        "coverage80": cover80 / n_points,
        "models": models,
    }


def bare_statsforecast(series, choices: dict, horizon: int, *, select: bool) -> float:
    """The same statsforecast work as the service, called directly on the same frame:
    cross-validation of the model set (when `select`) and the forecast of each series'
    chosen model."""
    from statsforecast import StatsForecast

    df = engine._frame([(s.key.as_text(), s.usage) for s in series])
    models = {m.alias: m for m in engine.model_set()}
    t0 = time.process_time()
    if select:
        StatsForecast(models=list(models.values()), freq=1, n_jobs=1).cross_validation(
            df=df, h=7, n_windows=2, step_size=7, level=[80, 95], refit=False
        )
    for name, model in models.items():
        keys = {k for k, c in choices.items() if c.model == name}
        if keys:
            sub = df[df["unique_id"].isin(keys)]
            StatsForecast(models=[model], freq=1, n_jobs=1).forecast(
                df=sub, h=horizon, level=[80, 95]
            )
    return time.process_time() - t0


def timed_refit(data, horizon: int, chosen=None):
    engine.TIMINGS["statsforecast"] = 0.0
    t0 = time.process_time()
    series, forecasts = pipeline(data, DAYS, horizon, chosen)
    return time.process_time() - t0, engine.TIMINGS["statsforecast"], series, forecasts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=1000, help="series in the speed test")
    parser.add_argument("--eval-series", type=int, default=200, help="series in the accuracy test")
    parser.add_argument("--horizon", type=int, default=92, help="days forecast in the speed test")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accuracy-only", action="store_true", help="skip the speed test")
    args = parser.parse_args()

    # warm up numba's compiled kernels (every model's fit, forward and forecast paths) so
    # neither side pays for compilation
    warm_series, _ = pipeline(generate(8, args.seed + 1), DAYS, 14)
    names = [m.alias for m in engine.model_set()]
    warm_choices = {
        s.key.as_text(): Choice(names[i % len(names)], 1.0) for i, s in enumerate(warm_series)
    }
    bare_statsforecast(warm_series, warm_choices, args.horizon, select=True)
    pipeline(generate(8, args.seed + 1), DAYS, args.horizon, chosen=warm_choices)

    base = generate(args.eval_series, args.seed)
    for case, data in (
        ("benchmark", base),
        ("spike and level shift", with_spikes_and_shifts(base, args.seed)),
    ):
        t0 = time.perf_counter()
        old, new = evaluate(data, robust=False), evaluate(data, robust=True)
        print(
            f"accuracy, {case}: {args.eval_series} series x {len(ORIGINS)} origins x {HORIZON} days "
            f"({time.perf_counter() - t0:.0f}s)"
        )
        print(f"  {'':<24}{'old (raw history)':>18}{'new (cleaned)':>15}{'change':>9}   target")
        rows = [
            ("MASE ours", "mase_ours", "new <= old"),
            ("MASE seasonal naive", "mase_snaive", ""),
            ("MASE ratio", "ratio", "<= 0.75"),
            ("95% interval coverage", "coverage95", "0.90-0.98"),
            ("80% interval coverage", "coverage80", ""),
        ]
        for label, key, target in rows:
            change = new[key] - old[key]
            print(
                f"  {label:<24}{old[key]:>18.4f}{new[key]:>15.4f}{change:>+9.4f}   {target}".rstrip()
            )
        worse = new["mase_ours"] > old["mase_ours"] + 1e-9
        inside = 0.90 <= new["coverage95"] <= 0.98
        print(
            f"  MASE {'WORSE than' if worse else 'not worse than'} the earlier method; 95% coverage "
            f"{'inside' if inside else 'OUTSIDE'} 0.90-0.98"
        )
        print(f"  models chosen, old: {dict(sorted(old['models'].items()))}")
        print(f"  models chosen, new: {dict(sorted(new['models'].items()))}")
    if args.accuracy_only:
        return

    # The machine is shared: both sides are timed in CPU seconds of this process (fits run
    # in-process, n_jobs=1) and interleaved on chunks of 250 series, so other work on the
    # machine does not tilt the comparison.
    data = generate(args.series, args.seed + 2)
    chunks = [data[i : i + 250] for i in range(0, len(data), 250)]
    ours = bare = inside = daily = bare_daily = inside_daily = 0.0
    for n, chunk in enumerate(chunks):
        ours_first = n % 2 == 0
        o, i, series, forecasts = timed_refit(chunk, args.horizon)
        choices = {f.key.as_text(): f.choice for f in forecasts if f.choice}
        b = bare_statsforecast(series, choices, args.horizon, select=True)
        if ours_first:
            d, di, _, _ = timed_refit(chunk, args.horizon, chosen=choices)
            bd = bare_statsforecast(series, choices, args.horizon, select=False)
        else:
            bd = bare_statsforecast(series, choices, args.horizon, select=False)
            d, di, _, _ = timed_refit(chunk, args.horizon, chosen=choices)
        ours, bare, inside = ours + o, bare + b, inside + i
        daily, bare_daily, inside_daily = daily + d, bare_daily + bd, inside_daily + di
    print(f"refit with model selection: {args.series} series x {DAYS} days, horizon {args.horizon}")
    print(
        f"  ours {ours:.1f} CPU-s ({args.series / ours:.1f} series/s)  bare statsforecast {bare:.1f}s  "
        f"overhead {ours / bare:.2f}x (target <= 1.3); {inside:.1f}s of ours inside statsforecast"
    )
    print(f"daily refit reusing the week's model choice: {args.series} series")
    print(
        f"  ours {daily:.1f} CPU-s ({args.series / daily:.1f} series/s)  bare statsforecast {bare_daily:.1f}s  "
        f"overhead {daily / bare_daily:.2f}x (target <= 1.3); {inside_daily:.1f}s of ours inside statsforecast"
    )

    per_day = (daily * 6 + ours) / 7 / args.series * 10_000
    print(
        f"10,000 series: full re-selection {ours / args.series * 10_000 / 60:.1f} CPU-min, daily refit "
        f"{daily / args.series * 10_000 / 60:.1f} CPU-min; with weekly re-selection about "
        f"{per_day / 60:.1f} CPU-min per day (one core, this machine, this run)"
    )


if __name__ == "__main__":
    main()
