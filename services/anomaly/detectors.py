"""Detectors: pure numeric models that turn a daily cost series into anomalous episodes.

Every detector registers under a kebab-case name with a parameters model that forbids
unknown keys (monitors name their detector and may override its parameters).

`robust-seasonal` (the default) walks a series day by day, as a stream would, and for each
day builds a baseline from the days before it only:

1. training days: the trailing `season_window` days of the current regime, where a day
   already flagged anomalous counts only as the edge of normal (expected + threshold x
   spread): a spike does not teach the model that spikes are normal, yet a pattern the model
   misjudged (a weekday it under-estimated) still pulls the baseline towards it;
2. weekly seasonality: multiplicative weekday factors (median of each weekday / overall
   median), kept only when they shrink the spread of the training days by `season_gain`;
3. level and trend: a Theil-Sen slope through the last `window` deseasonalised days but the
   newest `trend_lag` (a climb that has just begun is judged, not followed), the level
   through all of them;
4. spread: 1.4826 x the median absolute deviation of the residuals, floored by their
   mean absolute deviation, by the noise of same-weekday differences (weekday factors
   cancel out of them, so factors fitted to a few weeks cannot hide the noise),
   `rel_floor` x the level and `abs_floor`; a day more than `learn_clip` spreads out that
   is not flagged is learnt at that distance (a drift's days add up);
5. intermittent series (at least `zero_share` of the training days cost nothing): the mean
   and standard deviation instead, since a median of zero says nothing.

The spread is widened by `1 + small_sample / n` (8 / n) for n training days: a baseline learnt from
two weeks is less certain than one learnt from eight.

Days without any line are missing (late data or no usage), not zero: they are neither
trained on nor judged. A day is flagged when its robust z-score passes `threshold` and the excess passes both
`min_impact` (money) and `min_impact_pct`. Nothing is flagged before `min_history`
training days exist (brand-new series). When all but one of the last `confirm_days` steps
are flagged in one direction, it is a level shift: the episode is closed and the new level
becomes the baseline (the older history rescaled to it), so a permanent step raises one
anomaly instead of alerting until the window forgets the old level. `mad` is the spine's plain baseline: the median and MAD of the
trailing weeks, no seasonality, trend or regimes.

Real bills add nuisances the walk knows (docs/anomaly.md): zero days of a series that has
them are no usage and the days with cost are judged among themselves; a zero (or missing)
day followed by about two days' worth is a `billing-delay` episode (data quality, not cost);
the 1st of the month carries the bump of earlier 1sts; a CUSUM of the z-scores flags a
`drift` whose days are each unremarkable; `rebase` days (feedback "planned") restart the
model. `sensitivity` (low/medium/high) sets the threshold (9/7/5).

`context-surprise` (see `detectors_context`) is for dense metric streams rather than daily
costs: it scores how badly a sequence model of the recent values predicted each new one. It
needs hundreds of steps to learn (`min_history`), so daily cost monitors keep
`robust-seasonal`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.anomaly.detectors_context import context_surprise_scores

MAD_TO_SIGMA = 1.4826
#: the spread is at least this x the mean absolute deviation of the residuals (the MAD alone
#: under-reads the noise of a short, weekday-fitted window)
MEAN_AD_FACTOR = 1.0
#: bump when a change to the maths makes stored walk states stale
STATE_VERSION = 7


class DetectorParams(BaseModel):
    """Parameters shared by the detectors (unknown keys are an error)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(5.0, gt=0, description="Robust z-score a day must reach")
    min_history: int = Field(14, ge=3, description="Training days needed before any alert")
    window: int = Field(28, ge=5, description="Days in the level/trend fit")
    min_impact: float = Field(10.0, ge=0, description="Smallest excess (money) worth an alert")
    min_impact_pct: float = Field(20.0, ge=0, description="Smallest excess in percent of expected")
    rel_floor: float = Field(0.05, ge=0, description="Spread floor as a share of the level")
    abs_floor: float = Field(0.01, ge=0, description="Spread floor in money")
    direction: str = Field("up", pattern="^(up|down|both)$", description="Which deviations alert")


#: robust-seasonal's z-score threshold per sensitivity (false-alarm rates in docs/anomaly.md)
SENSITIVITY = {"low": 9.0, "medium": 7.0, "high": 5.0}


class RobustSeasonalParams(DetectorParams):
    threshold: float = Field(
        SENSITIVITY["medium"], gt=0, description="Robust z-score a day must reach"
    )
    sensitivity: str | None = Field(
        None,
        pattern="^(low|medium|high)$",
        description="Sets the threshold (low 9, medium 7, high 5)",
    )
    min_impact: float = Field(40.0, ge=0, description="Smallest excess (money) worth an alert")
    min_impact_pct: float = Field(30.0, ge=0, description="Smallest excess in percent of expected")
    season_window: int = Field(56, ge=14, description="Days used for weekday factors")
    season_gain: float = Field(
        0.8, gt=0, le=1, description="Keep seasonality when spread shrinks below this share"
    )
    confirm_days: int = Field(7, ge=2, description="Consecutive flags that make a level shift")
    trend: bool = Field(True, description="Fit a Theil-Sen trend (else the median level)")
    period: int = Field(7, ge=2, description="Season length in steps (7 for daily costs)")
    rescale_history: bool = Field(
        True, description="After a level shift, rescale the older history to the new level"
    )
    small_sample: float = Field(
        8.0, ge=0, description="Widen the spread by 1 + this / training days"
    )
    min_nonzero: int = Field(
        3, ge=0, description="Days with cost needed before an intermittent series alerts"
    )
    zero_share: float = Field(
        0.3, gt=0, le=1, description="Share of zero days that makes a series intermittent"
    )
    drift_k: float = Field(
        1.0, ge=0, description="CUSUM allowance: z-score per day a drift must exceed"
    )
    drift_h: float = Field(
        10.0, gt=0, description="CUSUM level (summed z above the allowance) that flags a drift"
    )
    rebase: tuple[str, ...] = Field(
        (), description="ISO dates where a planned change starts: the new level is normal at once"
    )
    holidays: tuple[str, ...] = Field(
        (), description="ISO dates judged like a Sunday (with weekly seasonality)"
    )
    trend_lag: int = Field(
        7, ge=0, description="Fit the trend's slope without the last this many days"
    )
    learn_clip: float = Field(
        2.0, gt=0, description="A day further out than this (z) is learnt at this distance"
    )
    new_month_pct: float = Field(
        100.0, ge=0, description="Excess (percent) a 1st of the month needs before one is seen"
    )

    @model_validator(mode="after")
    def _sensitivity(self) -> RobustSeasonalParams:
        if self.sensitivity is not None:
            self.threshold = SENSITIVITY[self.sensitivity]
        return self


class MadParams(DetectorParams):
    pass


@dataclass
class Episode:
    """Consecutive anomalous steps [start, end) of one series."""

    start: int
    end: int
    direction: int  # +1 above expected, -1 below
    kind: str  # "spike" or "level-shift"
    score: float


@dataclass
class WalkState:
    """Where a walk stopped: enough to continue it when only new steps are appended."""

    y: np.ndarray
    learn: np.ndarray
    expected: np.ndarray
    scores: np.ndarray
    regime_start: int
    run_dir: int  # the drift CUSUM in thousandths (the column of an earlier, unused field)
    run_start: int  # the step of the last confirmed level shift (-1: none)

    def continues(self, y: np.ndarray) -> bool:
        return self.common_prefix(y) == len(self.y)

    def common_prefix(self, y: np.ndarray) -> int:
        """How many leading steps of `y` this walk has already seen unchanged."""
        k = min(len(self.y), len(y))
        differ = np.flatnonzero(~((self.y[:k] == y[:k]) | (np.isnan(self.y[:k]) & np.isnan(y[:k]))))
        return int(differ[0]) if len(differ) else k


@dataclass
class Detection:
    """What a detector found: per-step expected values and z-scores, and the episodes."""

    expected: np.ndarray
    scores: np.ndarray
    episodes: list[Episode] = field(default_factory=list)
    state: WalkState | None = None


def _med(a: np.ndarray) -> float:
    """Median of a small array (np.median's overhead dominates at these sizes)."""
    s = np.sort(a, axis=None)
    n = len(s)
    m = n // 2
    return float(s[m]) if n % 2 else 0.5 * float(s[m - 1] + s[m])


@lru_cache(maxsize=64)
def _upper(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def _theil_sen(pos: np.ndarray, vals: np.ndarray) -> tuple[float, float]:
    if len(vals) < 3:
        return _med(vals), 0.0
    dp = np.subtract.outer(pos, pos)
    dv = np.subtract.outer(vals, vals)
    upper = _upper(len(vals))
    slope = _med(dv[upper] / dp[upper])
    intercept = _med(vals - slope * pos)
    return intercept, slope


def _spread(resid: np.ndarray, level: float, p: DetectorParams) -> float:
    centred = resid - _med(resid)
    mad = MAD_TO_SIGMA * _med(np.abs(centred))
    mean_ad = MEAN_AD_FACTOR * float(np.abs(centred).sum()) / len(centred)
    return max(mad, mean_ad, p.rel_floor * abs(level), p.abs_floor)


def _season_factors(
    vals: np.ndarray, phase: np.ndarray, p: RobustSeasonalParams
) -> np.ndarray | None:
    if len(vals) < 3 * p.period:
        return None
    overall = _med(vals)
    if overall <= 0:
        return None
    factors = np.ones(p.period)
    for d in range(p.period):
        mine = vals[phase == d]
        if len(mine) >= 3:
            factors[d] = max(_med(mine) / overall, 0.05)
    plain = _med(np.abs(vals - overall))
    ds = vals / factors[phase]
    seasonal = _med(np.abs(ds - _med(ds)))
    return factors if seasonal < p.season_gain * plain else None


def _baseline(
    y: np.ndarray, train: np.ndarray, t: int, phase: np.ndarray | None, p: RobustSeasonalParams
) -> tuple[float, float]:
    vals = y[train]
    zeros = vals == 0
    if zeros.any() and vals.min() >= 0:
        # zero-inflated series (intermittent services, idle days): a day with cost is judged
        # against the days with cost only, since a median or weekday factor of zero says
        # nothing and a mean/std mixing the zeros in calls every ordinary busy day unusual
        if np.count_nonzero(~zeros) < 3:
            level = float(vals.sum()) / len(vals)
            return level, max(float(np.std(vals)), p.rel_floor * abs(level), p.abs_floor)
        train, vals = train[~zeros], vals[~zeros]
    factors = _season_factors(vals, phase[train], p) if phase is not None else None
    if factors is not None and phase is not None:
        f_train, f_t = factors[phase[train]], float(factors[phase[t]])
    else:
        f_train, f_t = np.ones(len(vals)), 1.0
    recent = slice(max(0, len(vals) - p.window), len(vals))
    ds = vals[recent] / f_train[recent]
    pos = train[recent].astype(float)
    if p.trend:
        # the slope is fitted without the last `confirm_days` days (a climb that has just begun
        # is judged, not followed), the level through the whole window
        old = pos <= pos[-1] - p.trend_lag
        if np.count_nonzero(old) < p.window // 2:
            old = np.ones(len(pos), dtype=bool)
        _, slope = _theil_sen(pos[old], ds[old])
        intercept = _med(ds - slope * pos)
        # extrapolate no further than half a window past the fit
        level = intercept + slope * min(t, pos[-1] + p.window / 2)
        resid = ds - (intercept + slope * pos)
    else:
        level = _med(ds)
        resid = ds - level
    if vals.min() >= 0:
        level = max(level, 0.0)
    return level * f_t, max(
        _spread(resid, level, p), _lag_spread(train, vals / f_train, p.period)
    ) * f_t


def _lag_spread(pos: np.ndarray, ds: np.ndarray, lag: int) -> float:
    """Noise read from the differences between training days `lag` steps apart (same weekday):
    weekday factors cancel out of them, so it does not shrink when the factors are fitted to
    only a few weeks (a median of three weekdays fits one of them exactly, and the residuals'
    MAD then reads a third of the noise). 1.4826 x MAD of the centred differences / sqrt(2);
    0 with fewer than 6 pairs."""
    j = np.searchsorted(pos, pos + lag)
    ok = j < len(pos)
    ok[ok] = pos[j[ok]] == pos[ok] + lag
    if np.count_nonzero(ok) < 6:
        return 0.0
    d = ds[j[ok]] - ds[ok]
    return MAD_TO_SIGMA * _med(np.abs(d - _med(d))) / math.sqrt(2)


def _passes(diff: float, expected: float, z: float, p: DetectorParams) -> bool:
    if abs(z) < p.threshold or abs(diff) < p.min_impact:
        return False
    return expected == 0 or abs(diff) / abs(expected) * 100 >= p.min_impact_pct


def robust_seasonal(  # noqa: C901 - the detector's steps (warm-up, seasonal fit, residual scale, resume) in order, as the paper gives them
    values: Sequence[float],
    phase: Sequence[int] | None = None,
    params: RobustSeasonalParams | None = None,
    *,
    resume: WalkState | None = None,
    keep: int | None = None,
    month_start: Sequence[bool] | None = None,
    rebase: Sequence[bool] | None = None,
) -> Detection:
    """Walk `values` step by step (see the module docstring); `phase` is each step's weekday.

    `month_start` marks the 1st of each month: its expected value carries the median excess
    of the earlier 1sts (a monthly fee billed as usage), and before any 1st has been seen its
    excess must pass `new_month_pct`. `rebase` marks the first day of a planned change
    (feedback "planned"): the model restarts there, so the new level is normal at once.

    `resume` continues an earlier walk of the same series (same start and parameters) from
    the first step whose value changed (new days appended, a late or restated recent day),
    unless a level shift was confirmed after that step: only the later steps are computed,
    with identical results. The returned `state` is taken after `keep` steps (all
    by default), so a provisional last step (a partial day) is not remembered.
    """
    p = params or RobustSeasonalParams()
    y = np.asarray(values, dtype=float)
    ph = np.asarray(phase, dtype=int) % p.period if phase is not None else None
    n = len(y)
    keep = n if keep is None else min(keep, n)
    expected = np.full(n, np.nan)
    scores = np.zeros(n)
    missing = np.isnan(y)
    learn = y.copy()  # what training sees: flagged steps clipped to the edge of normal
    flags = np.zeros(n, dtype=np.int8)
    regime_start, last_confirm = 0, -1
    first = 0
    cusum = 0.0
    # resume from the first step that changed, provided no level shift was confirmed from
    # there on (a confirmation rewrites earlier training values)
    start = min(resume.common_prefix(y), keep) if resume is not None else 0
    if resume is not None and start > resume.run_start:
        first = start
        learn[:first] = resume.learn[:first]
        expected[:first], scores[:first] = resume.expected[:first], resume.scores[:first]
        regime_start, last_confirm = resume.regime_start, resume.run_start
        cusum = resume.run_dir / 1000
        for i in range(max(0, first - p.confirm_days, last_confirm + 1), first):
            flags[i] = _flag(y[i], expected[i], scores[i], p)
    mstart = (
        np.zeros(n, dtype=bool) if month_start is None else np.asarray(month_start, dtype=bool)[:n]
    )
    rebased = np.zeros(n, dtype=bool) if rebase is None else np.asarray(rebase, dtype=bool)[:n]
    state = None
    for t in range(first, n):
        if rebased[t] and t > regime_start:
            regime_start, last_confirm, cusum = t, t - 1, 0.0
        if t == keep:
            state = WalkState(
                y[:t].copy(),
                learn[:t].copy(),
                expected[:t].copy(),
                scores[:t].copy(),
                regime_start,
                round(cusum * 1000),
                last_confirm,
            )
        if missing[t]:
            continue
        lo = max(regime_start, t - p.season_window)
        shifted = last_confirm - p.confirm_days + 1  # where the last level shift began, at most
        if regime_start < shifted and t - shifted >= 3 * p.period:
            # the history before a level shift was rescaled to the new level, a bridge until the
            # new regime has three of each weekday of its own: an added amount changes the weekly
            # shape (weekends no longer a fixed share of weekdays), which a ratio cannot carry
            lo = max(lo, shifted)
        train = np.arange(lo, t)[~missing[lo:t]]
        needed = p.min_history if regime_start == 0 else min(p.min_history, p.confirm_days)
        if len(train) < needed or np.count_nonzero(learn[train]) < p.min_nonzero:
            continue
        exp, scale = _baseline(learn, train, t, ph, p)
        scale *= 1 + p.small_sample / len(train)
        pct, base, ref = p.min_impact_pct, exp, exp
        if mstart[t]:
            # `expected` keeps the day's value without the bump, so each 1st's own bump is y/expected
            seen = [
                i for i in range(max(0, t - 100), t) if mstart[i] and expected[i] > 0 and y[i] > 0
            ]
            if seen:
                # a fee billed as usage adds about the same money to every 1st: the bump is the
                # median amount of the last two, its spread widened in proportion (money, not a
                # share of the day: read as a ratio, 1sts that fell on Sundays made a weekday
                # 1st's fee twice its size and hid a level shift's second day). On a series with
                # idle days, a 1st under its expectation (a busy day plus a fee would be over it)
                # was idle but for the fee: all of it is the fee
                idle = bool(np.count_nonzero(learn[train] == 0))
                quiet = [i for i in seen[-2:] if idle and y[i] < expected[i]]
                extra = max(
                    0.0,
                    _med(np.array([y[i] if i in quiet else y[i] - expected[i] for i in seen[-2:]])),
                )
                if exp > 0:
                    scale *= (exp + extra) / exp
                exp += extra
            if len(seen) < 2:
                # one 1st is too few to know its bump. A fee is money, not a share of the day, so
                # its percent is taken of a typical day (the median expectation of the week
                # before), not of a weekend's: a weekend 1st is cheap to double
                pct = max(pct, p.new_month_pct)
                week = expected[max(0, t - p.period) : t]
                week = week[~np.isnan(week)]
                ref = max(exp, _med(week)) if len(week) else exp
        diff = y[t] - exp
        z = diff / scale
        # drifts: a CUSUM of the z-scores catches a climb whose days are each unremarkable
        cusum = round(min(max(0.0, cusum + z - p.drift_k), 1e5) if not mstart[t] else cusum, 3)
        recent = scores[max(0, t - 4) : t]
        if 2 < z < p.threshold and (
            (cusum >= p.drift_h and np.count_nonzero(recent > 2) >= 3)
            or _short_run(scores, t, z, p)
        ):
            z = p.threshold  # the summed evidence, not the day alone, makes it anomalous
        expected[t], scores[t] = base, z
        if y[t] == 0 and not np.all(learn[train]):
            scores[t] = 0.0
            continue  # an idle day of a series that has idle days: no usage, not a drop
        if z > 2 and _catch_up(
            y, learn, missing, train, t, exp, scale, ph, p, alerts=_passes(diff, exp, z, p)
        ):
            # a billing delay: yesterday's charges arrived today. A data-quality event
            # (marked by a NaN score), neither a cost anomaly nor something to learn from;
            # recognised whether or not the catch-up alone would pass the thresholds (on a
            # series with idle days, only when it would: see _catch_up)
            scores[t] = np.nan
            learn[t] = exp
            if not missing[t - 1]:
                learn[t - 1] = expected[t - 1] if not math.isnan(expected[t - 1]) else exp
            continue
        direction = int(np.sign(diff)) if _passes(diff, exp, z, p) else 0
        if direction > 0 and 100 * diff < pct * abs(ref):
            # a 1st of the month before any was seen: not far enough out. The score is capped so
            # that episodes (rebuilt from the scores) agree with the walk
            scores[t] = min(z, 0.99 * p.threshold)
            direction = 0
        if direction == 0:
            if abs(z) > p.learn_clip and y[t] > 0:
                # a day out of line but not anomalous teaches at most `learn_clip` spreads: a climb
                # (a drift) is not followed by the baseline day by day, so its evidence adds up
                learn[t] = exp + np.sign(z) * p.learn_clip * scale
            continue
        flags[t] = direction
        learn[t] = exp + direction * p.threshold * scale
        w0 = max(t - p.confirm_days + 1, last_confirm + 1, 0)
        same = np.flatnonzero(flags[w0 : t + 1] == direction)
        if t - w0 + 1 >= p.confirm_days and len(same) >= p.confirm_days - 1:
            # a level shift (all but one of the last `confirm_days` steps out, one way): the
            # new level is normal from now on. The history before it is brought to the new
            # level (by a ratio or an added amount, see _rescale) when the shift has a clean
            # ratio; otherwise the new regime starts from the shift alone.
            run_start = w0 + int(same[0])
            run = slice(run_start, t + 1)
            ratio = _med(y[run] / expected[run]) if np.all(expected[run] > 0) else float("nan")
            if math.isfinite(ratio) and ratio > 0 and p.rescale_history:
                _rescale(learn[regime_start:run_start], y[run], expected[run], ratio)
            else:
                regime_start = run_start
            learn[run] = y[run]
            last_confirm = t
            cusum = 0.0
    if state is None:
        state = WalkState(
            y[:keep].copy(),
            learn[:keep].copy(),
            expected[:keep].copy(),
            scores[:keep].copy(),
            regime_start,
            round(cusum * 1000),
            last_confirm,
        )
    return Detection(expected, scores, episodes_from(y, expected, scores, p), state)


def _rescale(old: np.ndarray, new: np.ndarray, expected: np.ndarray, ratio: float) -> None:
    """Bring the history before a level shift to the new level, in place: by `ratio` (growth:
    every day scaled, the weekly shape kept) or by the shift's median added amount (a new
    always-on resource: the same money every day, weekends included), whichever fits the
    shift's own days (`new` against their old expectation) better. Idle days stay idle."""
    added = _med(new - expected)
    if np.abs(new - expected - added).sum() < np.abs(new - expected * ratio).sum():
        busy = old > 0
        old[busy] = np.maximum(old[busy] + added, 0.0)
    else:
        old *= ratio


def _short_run(scores: np.ndarray, t: int, z: float, p: RobustSeasonalParams) -> bool:
    """Whether step t ends a run of 2-3 days all above 2 that is anomalous as a whole: the
    z-score of the run's total (the sum of its days' z over the square root of their number,
    each day counted at most at the threshold) reaches the threshold (a spike of two or three
    days, each just under it)."""
    total, days = z, 1
    for i in range(t - 1, max(-1, t - 3), -1):
        if not scores[i] > 2:
            break
        total, days = total + min(scores[i], p.threshold), days + 1
    return days >= 2 and total / math.sqrt(days) >= p.threshold


def _catch_up(
    y: np.ndarray,
    learn: np.ndarray,
    missing: np.ndarray,
    train: np.ndarray,
    t: int,
    exp: float,
    scale: float,
    ph: np.ndarray | None,
    p: RobustSeasonalParams,
    *,
    alerts: bool,
) -> bool:
    """Whether step t is the catch-up of a one-day billing delay: the day before cost nothing
    (or has no line), and today is about both days' worth (the sum of each day's expectation,
    with its weekday, within a quarter of that sum or 3 spreads).

    On a series with idle days (over a tenth of its training days at zero) a zero day proves
    little, since the series has them anyway, so there the catch-up must be a day that would
    alert on its own (`alerts`) and match both days' worth within the noise (3 spreads, no
    quarter): an ordinary busy day after an idle one, or one a little high, stays a cost day,
    and a spike after an idle day is taken for a catch-up only when it is one busy day's worth
    to within 3 spreads. A day without any line on a series that reports its idle days as zero
    lines is as telling as on a busy series and is judged as there. What this cannot tell apart
    is a one-day spike of one day's worth right after an idle day: it reads exactly like a
    catch-up, and is reported as one (a spike of two or three days is still found from its
    second day)."""
    if t == 0 or not (missing[t - 1] or y[t - 1] == 0):
        return False
    idle = np.count_nonzero(learn[train] == 0) > 0.1 * len(train) and not (
        missing[t - 1] and not missing[train].any()
    )
    if idle and not alerts:
        return False
    before = train[train < t - 1]
    if len(before) < 3:
        return False
    exp_prev, _ = _baseline(learn, before, t - 1, ph, p)
    if exp_prev <= 0:
        return False
    off = abs(y[t] - exp - exp_prev)
    return off <= 3 * scale if idle else off <= max(0.25 * (exp + exp_prev), 3 * scale)


def _flag(y: float, expected: float, score: float, p: DetectorParams) -> int:
    if (
        math.isnan(expected)
        or math.isnan(y)
        or math.isnan(score)
        or not _passes(y - expected, expected, score, p)
    ):
        return 0
    return 1 if score > 0 else -1


def episodes_from(
    y: np.ndarray, expected: np.ndarray, scores: np.ndarray, p: DetectorParams
) -> list[Episode]:
    """Group flagged steps into episodes (a one-step gap does not split one); an episode of
    `confirm_days - 1` steps or more is a level shift."""
    confirm = getattr(p, "confirm_days", 10**9) - 1
    alerted = {"up": (1,), "down": (-1,), "both": (1, -1)}[p.direction]
    out: list[Episode] = []
    cur: Episode | None = None
    delays: list[Episode] = []
    for t in range(len(y)):
        if math.isnan(scores[t]):  # a billing delay's catch-up (see robust_seasonal)
            delays.append(Episode(max(t - 1, 0), t + 1, 1, "billing-delay", 0.0))
            continue
        d = _flag(y[t], expected[t], scores[t], p)
        # a lasting change (3+ days) stays one anomaly across gaps of up to `confirm_days`, and
        # so does any episode whose gap days stayed clearly raised (z > 2: a shift whose
        # next days sit just under the threshold until the drift evidence flags them)
        gap = 1 if cur is None or cur.end - cur.start < 3 else max(1, confirm)
        raised = (
            cur is not None
            and t - cur.end <= max(1, confirm)
            and bool(np.all(cur.direction * scores[cur.end : t] > 2))
        )
        if (
            d in alerted
            and cur is not None
            and cur.direction == d
            and (t - cur.end <= gap or raised)
        ):
            cur.end = t + 1
            cur.score = max(cur.score, abs(float(scores[t])))
        elif d in alerted:
            cur = Episode(t, t + 1, d, "spike", abs(float(scores[t])))
            out.append(cur)
        elif (
            cur is not None
            and t - cur.end >= gap
            and not (raised and cur.direction * scores[t] > 2)
        ):
            cur = None
    threshold = p.threshold
    for ep in out:
        if scores[ep.start] == threshold and ep.end - ep.start > 1:
            ep.kind = "drift"  # opened by the CUSUM: a climb, not a step (see robust_seasonal)
        elif ep.end - ep.start >= confirm:
            ep.kind = "level-shift"
    return sorted(out + delays, key=lambda e: e.start)


def mad(
    values: Sequence[float],
    phase: Sequence[int] | None = None,
    params: MadParams | None = None,
    **_: object,
) -> Detection:
    """The spine's baseline: median and MAD of the trailing `window` unflagged steps."""
    p = params or MadParams()
    y = np.asarray(values, dtype=float)
    n = len(y)
    flags = np.zeros(n, dtype=np.int8)
    expected = np.full(n, np.nan)
    scores = np.zeros(n)
    missing = np.isnan(y)
    for t in range(n):
        lo = max(0, t - p.window)
        train = np.arange(lo, t)[(flags[lo:t] == 0) & ~missing[lo:t]]
        if missing[t]:
            continue
        if len(train) < p.min_history:
            continue
        vals = y[train]
        med = _med(vals)
        scale = _spread(vals - med, med, p)
        expected[t], scores[t] = med, (y[t] - med) / scale
        if _passes(y[t] - med, med, scores[t], p):
            flags[t] = 1 if scores[t] > 0 else -1
    return Detection(expected, scores, episodes_from(y, expected, scores, p))


class ContextSurpriseParams(DetectorParams):
    """Defaults fixed once on NAB (bench/anomaly_accuracy.py); `window` sets the expected value
    (median of the last `window` steps) used for impact and direction."""

    threshold: float = Field(
        4.0, gt=0, description="Surprise score (z of the recent surprise) that alerts"
    )
    min_history: int = Field(
        300, ge=3, description="Steps that fix the value bins and train the model before any score"
    )
    levels: int = Field(
        16, ge=2, le=256, description="Value bins across the range of the learning steps"
    )
    order: int = Field(
        3, ge=0, le=8, description="Longest context (preceding steps) the sequence model uses"
    )
    alpha: float = Field(
        1.0, gt=0, description="Weight of the shorter context's prediction in a longer one"
    )
    short: int = Field(10, ge=1, description="Steps averaged into the recent surprise")
    long: int = Field(
        8640, ge=10, description="Steps of history the recent surprise is compared with"
    )
    sd_floor: float = Field(
        0.03, gt=0, description="Smallest spread (bits) of the averaged surprise"
    )
    range_tol: float = Field(
        0.05, ge=0, description="Share of the range beyond all earlier values that is a range break"
    )
    range_score: float = Field(10.0, gt=0, description="Least score of a range break")
    deviation: bool = Field(
        True, description="Also score the value's distance from the recent mean (larger score kept)"
    )
    rest: int | None = Field(
        None, ge=0, description="Quiet steps after an alert (None: min_history / 5)"
    )
    season: int | None = Field(
        None,
        ge=2,
        description="Steps in one cycle (a week of the metric): also score the distance from the same step of the last 3 cycles",
    )


def context_surprise(
    values: Sequence[float],
    phase: Sequence[int] | None = None,
    params: ContextSurpriseParams | None = None,
    **_: object,
) -> Detection:
    """Sequence-surprise scores (see `detectors_context`), signed by the side of the recent
    median the value is on, and episodes where they reach `threshold`."""
    p = params or ContextSurpriseParams()
    y = np.asarray(values, dtype=float)
    score = context_surprise_scores(
        y,
        learn=p.min_history,
        levels=p.levels,
        order=p.order,
        alpha=p.alpha,
        short=p.short,
        long=p.long,
        sd_floor=p.sd_floor,
        range_tol=p.range_tol,
        range_score=p.range_score,
        with_deviation=p.deviation,
        level=p.threshold,
        rest=p.min_history // 5 if p.rest is None else p.rest,
        season=p.season,
    )
    expected = _trailing_median(y, p.window)
    side = np.where(y < expected, -1.0, 1.0)
    scores = np.where(np.isnan(expected), 0.0, score * side)
    return Detection(expected, scores, episodes_from(y, expected, scores, p))


def _trailing_median(y: np.ndarray, window: int) -> np.ndarray:
    """Median of the `window` steps before each step, missing steps ignored (NaN when none)."""
    out = np.full(len(y), np.nan)
    if len(y) > window:
        views = np.lib.stride_tricks.sliding_window_view(y[:-1], window)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing window stays NaN
            out[window:] = np.nanmedian(views, axis=1)
    return out


@dataclass(frozen=True)
class DetectorEntry:
    name: str
    params: type[DetectorParams]
    run: Callable[..., Detection]
    description: str


DETECTORS: dict[str, DetectorEntry] = {
    "robust-seasonal": DetectorEntry(
        "robust-seasonal",
        RobustSeasonalParams,
        robust_seasonal,
        "weekly seasonality, Theil-Sen trend, level shifts, MAD spread",
    ),
    "mad": DetectorEntry("mad", MadParams, mad, "median/MAD over the trailing weeks"),
    "context-surprise": DetectorEntry(
        "context-surprise",
        ContextSurpriseParams,
        context_surprise,
        "sequence-model surprise with anomaly likelihood, for dense metric streams",
    ),
}


def get_detector(name: str) -> DetectorEntry:
    """The registered detector `name`; a clear error lists the known ones."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}: known {sorted(DETECTORS)}") from None


def run_detector(
    name: str,
    values: Sequence[float],
    phase: Sequence[int] | None,
    overrides: dict | None = None,
    **kw: object,
) -> Detection:
    """Run the detector `name` with its defaults updated by `overrides` (validated)."""
    entry = get_detector(name)
    return entry.run(values, phase, entry.params(**(overrides or {})), **kw)
