"""Context surprise: how badly a sequence model of the recent past predicted the latest value.

Dense metric streams (CPU, latency, request counts, temperatures) break in ways a baseline
and a spread do not see: a value inside its usual range at the wrong moment, a rhythm that
changes, a noise pattern that goes quiet. Contextual detectors (CAD OSE, HTM) score how
unexpected each value is *given the values just before it*; this is that idea in a few
dozen lines of numpy, strictly causal (the score of step t reads values up to t only):

1. symbols: after `learn` steps, the range of those steps is cut into `levels` equal bins;
   later values fall in those bins or in bins beyond the range (clipped at one range out);
2. surprise: an interpolated back-off model (as in PPM compression) predicts the symbol of
   step t from the last 0..`order` symbols, each context's counts blended with the shorter
   context's prediction; the raw score is -log2 of the probability it gave the symbol seen.
   Every step then updates the counts, so a new pattern that repeats stops surprising;
3. likelihood (after Numenta's anomaly likelihood): the mean surprise of the last `short`
   steps, as a z-score against the mean and spread of those means over the last `long`
   steps, so a noisy stream needs a larger jump than a regular one;
4. deviation: the same likelihood over a plain value score, |value - mean| / standard
   deviation of the previous `learn` steps (clipped at 20), the larger of the two z-scores
   kept: an ensemble of unlike detectors in the spirit of Skyline (a level change scores
   on both; on NAB it lifts the split-check grid's median from 61.6 to 64.4 and its
   minimum from 52.9 to 55.4);
5. range breaks (after Numenta's NAB detector): a value beyond everything seen so far by
   `range_tol` of the range is scored at least `range_score`;
6. rest (after CAD OSE): after a step reaching `level`, the next `rest` steps score 0, so a
   lasting change raises one alert rather than one per step while the model adapts.
"""

from __future__ import annotations

import math

import numpy as np


def symbols(y: np.ndarray, learn: int, levels: int) -> np.ndarray:
    """Bin index of every value, bins fixed by the range of the first `learn` values."""
    head = y[:learn]
    lo, hi = float(head.min()), float(head.max())
    step = (hi - lo) / levels if hi > lo else max(abs(lo), 1.0) / levels
    # one range beyond either edge keeps the alphabet bounded (3 x levels symbols)
    return np.clip(np.floor((y - lo) / step), -levels, 2 * levels - 1).astype(np.int64) + levels


def surprise(sym: np.ndarray, alphabet: int, order: int, alpha: float) -> np.ndarray:
    """-log2 P(symbol | last `order` symbols) under an interpolated back-off count model,
    learnt online (each step is predicted before it is counted)."""
    counts: dict[int, int] = {}
    totals: dict[int, int] = {}
    seq = sym.tolist()
    out = np.zeros(len(seq))
    depth = order + 1
    uniform = 1.0 / alphabet
    for t, s in enumerate(seq):
        p, ctx, seen = uniform, 0, []
        for k in range(min(order, t) + 1):
            if k:
                ctx = ctx * (alphabet + 1) + seq[t - k] + 1
            c = ctx * depth + k  # a context of k symbols, distinct from shorter ones
            key = c * alphabet + s
            seen.append((c, key))
            p = (counts.get(key, 0) + alpha * p) / (totals.get(c, 0) + alpha)
        out[t] = -math.log2(p)
        for c, key in seen:
            counts[key] = counts.get(key, 0) + 1
            totals[c] = totals.get(c, 0) + 1
    return out


def likelihood_z(raw: np.ndarray, start: int, short: int, long: int, floor: float) -> np.ndarray:
    """z-score of the mean of the last `short` raw scores against the means of the previous
    `long` steps (0 before `start`)."""
    n = len(raw)
    idx = np.arange(n)
    c = np.concatenate([[0.0], np.cumsum(raw)])
    first = np.maximum(0, idx + 1 - short)
    avg = (c[idx + 1] - c[first]) / (idx + 1 - first)
    a = np.concatenate([[0.0], np.cumsum(avg)])
    a2 = np.concatenate([[0.0], np.cumsum(avg * avg)])
    out = np.zeros(n)
    t = idx[start:]
    lo = np.maximum(0, t - long)
    k = np.maximum(t - lo, 1)
    mu = (a[t] - a[lo]) / k
    sd = np.sqrt(np.maximum((a2[t] - a2[lo]) / k - mu * mu, 0.0))
    out[start:] = (avg[t] - mu) / np.maximum(sd, floor)
    return out


def deviation(y: np.ndarray, window: int, clip: float = 20.0) -> np.ndarray:
    """|value - mean| / standard deviation of the previous `window` values, the spread floored
    at 0.1 % of the range seen so far (a flat stream that moves is far out, not infinitely)."""
    n = len(y)
    idx = np.arange(n)
    c = np.concatenate([[0.0], np.cumsum(y)])
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    lo = np.maximum(0, idx - window)
    k = np.maximum(idx - lo, 1)
    mu = (c[idx] - c[lo]) / k
    sd = np.sqrt(np.maximum((c2[idx] - c2[lo]) / k - mu * mu, 0.0))
    span = np.maximum.accumulate(y) - np.minimum.accumulate(y)
    return np.minimum(np.abs(y - mu) / np.maximum(sd, 1e-3 * span + 1e-12), clip)


def seasonal_deviation(
    y: np.ndarray, season: int, window: int, cycles: int = 3, clip: float = 20.0, gain: float = 0.8
) -> np.ndarray:
    """|value - the median of the same step in the last `cycles` seasons| / standard deviation of
    that difference over the previous `window` steps: a value ordinary for the stream but not
    for this time of day (or week). NaN where it does not apply: before `cycles` + 1 seasons,
    and where the cycle does not explain the stream (the difference spreads `gain` x the
    values' spread or more)."""
    n = len(y)
    out = np.zeros(n)
    first = cycles * season
    if n <= first + 1:
        return out
    lagged = np.stack([y[first - k * season : n - k * season] for k in range(1, cycles + 1)])
    diff = np.zeros(n)
    diff[first:] = y[first:] - np.median(lagged, axis=0)
    c = np.concatenate([[0.0], np.cumsum(diff)])
    c2 = np.concatenate([[0.0], np.cumsum(diff * diff)])
    idx = np.arange(n)
    lo = np.maximum(first, idx - window)
    k = np.maximum(idx - lo, 1)
    mu = (c[idx] - c[lo]) / k
    sd = np.sqrt(np.maximum((c2[idx] - c2[lo]) / k - mu * mu, 0.0))
    span = np.maximum.accumulate(y) - np.minimum.accumulate(y)
    out = np.minimum(np.abs(diff - mu) / np.maximum(sd, 1e-3 * span + 1e-12), clip)
    # only where the cycle explains the stream: the seasonal difference must spread less than
    # `gain` x the values themselves over the same window
    v1 = np.concatenate([[0.0], np.cumsum(y)])
    v2 = np.concatenate([[0.0], np.cumsum(y * y)])
    vm = (v1[idx] - v1[lo]) / k
    vsd = np.sqrt(np.maximum((v2[idx] - v2[lo]) / k - vm * vm, 0.0))
    out[sd >= gain * vsd] = np.nan
    out[: first + season] = np.nan  # a cycle of differences before their spread means anything
    return out


def range_breaks(y: np.ndarray, start: int, tol: float) -> np.ndarray:
    """Steps (from `start`) beyond the minimum or maximum of all earlier values by `tol` x range."""
    out = np.zeros(len(y), dtype=bool)
    if len(y) < 2:
        return out
    mn = np.minimum.accumulate(y)[:-1]
    mx = np.maximum.accumulate(y)[:-1]
    span = tol * (mx - mn)
    out[1:] = (y[1:] > mx + span) | (y[1:] < mn - span)
    out[:start] = False
    return out


def rest_after_alerts(score: np.ndarray, level: float, rest: int) -> np.ndarray:
    """Zero the `rest` steps after every step scoring `level` or more (silence extends while
    the score stays high, as in CAD OSE)."""
    quiet = np.zeros(len(score) + 1, dtype=np.int64)
    for t in np.flatnonzero(score >= level).tolist():  # Python ints
        quiet[t + 1] += 1
        quiet[min(t + 1 + rest, len(score))] -= 1
    out = score.copy()
    out[np.cumsum(quiet[:-1]) > 0] = 0.0
    return out


def context_surprise_scores(
    values: np.ndarray,
    *,
    learn: int,
    levels: int,
    order: int,
    alpha: float,
    short: int,
    long: int,
    sd_floor: float,
    range_tol: float,
    range_score: float,
    with_deviation: bool,
    level: float,
    rest: int,
    season: int | None = None,
) -> np.ndarray:
    """Non-negative score per step (see the module docstring); missing steps (NaN) are skipped
    and score 0, and nothing scores before `learn` present steps."""
    y = np.asarray(values, dtype=float)
    present = np.flatnonzero(~np.isnan(y))
    out = np.zeros(len(y))
    v = y[present]
    if len(v) <= learn:
        return out
    raw = surprise(symbols(v, learn, levels), 3 * levels, order, alpha)
    z = np.maximum(likelihood_z(raw, learn, short, long, sd_floor), 0.0)
    if with_deviation or season:
        dev = deviation(v, learn)
        if with_deviation:
            z = np.maximum(z, likelihood_z(dev, learn, short, long, sd_floor))
        if season:
            # the distance from the same step of earlier cycles where the cycle explains the
            # stream, else the plain distance (so its likelihood has a history from the start)
            seas = seasonal_deviation(v, season, learn)
            z = np.maximum(
                z, likelihood_z(np.where(np.isnan(seas), dev, seas), learn, short, long, sd_floor)
            )
    z = np.where(range_breaks(v, learn, range_tol), np.maximum(z, range_score), z)
    out[present] = rest_after_alerts(z, level, rest)
    return out
