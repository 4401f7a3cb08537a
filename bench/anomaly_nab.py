"""NAB (Numenta Anomaly Benchmark) scoring, standard profile, from its documented method.

- Each labelled window is scored once: the first detection inside it earns the scaled
  sigmoid of its relative position, A_TP x sigma(y) / sigma(-1) where y = -(right - i + 1) /
  width (so +1 at the left edge, ~0 at the right edge); a missed window costs -A_FN.
- A detection outside every window costs A_FP x sigma(y) with y = distance past the previous
  window's right edge / (that window's width - 1), sigma(y) = 2 / (1 + e^(5y)) - 1, and -1 when
  y > 3 or there is no previous window.
- The first 15 % of each file (at most 750 rows) is probationary: nothing there is scored.
- Every row whose score reaches the threshold is a detection: NAB has no cooldown, so each
  row over the threshold outside a window is its own false positive (a detector that wants
  to stay quiet after an alert does so itself, before the threshold is swept, as CAD OSE
  does); within a window only the earliest detection counts.
- Standard profile: A_TP = 1, A_FN = 1, A_FP = 0.11. One threshold for the whole corpus is
  swept over every distinct score (NAB's sweeper); the best raw score is normalised as
  100 x (raw - null) / (perfect - null), where the null detector detects nothing
  (-A_FN per window) and the perfect one detects every window (A_TP per window).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

STANDARD = {"tp": 1.0, "fn": 1.0, "fp": 0.11}
PROBATION = 0.15


def scaled_sigmoid(y: float) -> float:
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass
class NabFile:
    name: str
    timestamps: list[datetime]
    values: np.ndarray
    windows: list[tuple[int, int]]  # inclusive row indices

    @property
    def probation(self) -> int:
        n = len(self.values)
        return int(min(math.floor(PROBATION * n), PROBATION * 5000))


def load_corpus(root: Path, folders=("realAWSCloudwatch", "realKnownCause")) -> list[NabFile]:
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out = []
    for folder in folders:
        for path in sorted((root / "data" / folder).glob("*.csv")):
            with open(path) as fh:
                rows = list(csv.DictReader(fh))
            ts = [datetime.fromisoformat(r["timestamp"]) for r in rows]
            vals = np.array([float(r["value"]) for r in rows])
            idx = []
            for start, end in windows.get(f"{folder}/{path.name}", []):
                s, e = datetime.fromisoformat(start), datetime.fromisoformat(end)
                left = next(i for i, t in enumerate(ts) if t >= s)
                right = max(i for i, t in enumerate(ts) if t <= e)
                idx.append((left, right))
            out.append(NabFile(f"{folder}/{path.name}", ts, vals, idx))
    return out


def weights(f: NabFile, profile=STANDARD) -> np.ndarray:
    """The score each row would earn if it were a detection (NaN inside probation)."""
    n = len(f.values)
    w = np.empty(n)
    max_tp = scaled_sigmoid(-1.0)
    prev: tuple[int, int] | None = None
    windows = sorted(f.windows)
    k = 0
    for i in range(n):
        while k < len(windows) and windows[k][1] < i:
            prev = windows[k]
            k += 1
        if k < len(windows) and windows[k][0] <= i <= windows[k][1]:
            left, right = windows[k]
            width = right - left + 1
            w[i] = profile["tp"] * scaled_sigmoid(-(right - i + 1) / width) / max_tp
        elif prev is None:
            w[i] = -profile["fp"]
        else:
            width = prev[1] - prev[0] + 1
            w[i] = profile["fp"] * scaled_sigmoid(abs(prev[1] - i) / (width - 1))
    w[: f.probation] = np.nan
    return w


def counted_windows(f: NabFile) -> list[tuple[int, int]]:
    return [w for w in f.windows if w[1] >= f.probation]


def raw_score(
    f: NabFile, w: np.ndarray, detections: np.ndarray, profile=STANDARD
) -> tuple[float, int, int, int]:
    """Raw score of boolean `detections` on one file, and its TP, FN, FP counts."""
    score, tp, fn, fp = 0.0, 0, 0, 0
    inside = np.zeros(len(w), dtype=bool)
    for left, right in counted_windows(f):
        inside[left : right + 1] = True
        hits = [i for i in range(max(left, f.probation), right + 1) if detections[i]]
        if hits:
            score += w[hits[0]]
            tp += 1
        else:
            score -= profile["fn"]
            fn += 1
    for i in np.flatnonzero(detections):
        if i >= f.probation and not inside[i]:
            score += w[i]
            fp += 1
    return score, tp, fn, fp


def _sweep_events(
    f: NabFile, w: np.ndarray, scores: np.ndarray, profile
) -> tuple[np.ndarray, np.ndarray]:
    """(score, change) pairs: the file's raw score at threshold th is -A_FN x windows plus
    the changes of every pair whose score >= th. A row outside windows changes it by its
    weight; inside a window, lowering the threshold changes it only when an earlier row of the
    window becomes a detection (the first detection is the one that counts)."""
    inside = np.zeros(len(w), dtype=bool)
    keys, changes = [], []
    for left, right in counted_windows(f):
        inside[left : right + 1] = True
        lo = max(left, f.probation)
        s, ww = scores[lo : right + 1], w[lo : right + 1]
        order = np.argsort(-s, kind="stable")
        best = np.maximum.accumulate(ww[order])  # earliest row detected so far has the top weight
        keys.append(s[order])
        changes.append(best - np.concatenate([[-profile["fn"]], best[:-1]]))
    outside = ~inside
    outside[: f.probation] = False
    keys.append(scores[outside])
    changes.append(w[outside])
    return np.concatenate(keys), np.concatenate(changes)


def sweep(
    corpus: list[NabFile], scores: dict[str, np.ndarray], profile=STANDARD, weights_by_file=None
):
    """Raw corpus score at every distinct threshold, as NAB's sweeper computes it: the
    thresholds (descending, +inf first: nothing detected) and the raw scores."""
    ws = weights_by_file or {f.name: weights(f, profile) for f in corpus}
    n_windows = sum(len(counted_windows(f)) for f in corpus)
    parts = [
        _sweep_events(f, ws[f.name], np.asarray(scores[f.name], dtype=float), profile)
        for f in corpus
    ]
    keys = np.concatenate([k for k, _ in parts])
    changes = np.concatenate([c for _, c in parts])
    order = np.argsort(-keys, kind="stable")
    keys, total = keys[order], np.cumsum(changes[order]) - profile["fn"] * n_windows
    last = np.r_[keys[1:] != keys[:-1], True]  # a threshold includes every row with that score
    return np.r_[np.inf, keys[last]], np.r_[-profile["fn"] * n_windows, total[last]]


def normalise(corpus: list[NabFile], raw: float, profile=STANDARD) -> float:
    n_windows = sum(len(counted_windows(f)) for f in corpus)
    null, perfect = -profile["fn"] * n_windows, profile["tp"] * n_windows
    return 100 * (raw - null) / (perfect - null)


def score_at(
    corpus: list[NabFile], scores: dict[str, np.ndarray], threshold: float, profile=STANDARD
) -> dict:
    """Normalised score and TP/FN/FP counts of `corpus` at one threshold."""
    total, tp, fn, fp = 0.0, 0, 0, 0
    for f in corpus:
        s, a, b, c = raw_score(
            f, weights(f, profile), np.asarray(scores[f.name]) >= threshold, profile
        )
        total, tp, fn, fp = total + s, tp + a, fn + b, fp + c
    n_windows = sum(len(counted_windows(f)) for f in corpus)
    return {
        "score": normalise(corpus, total, profile),
        "threshold": threshold,
        "raw": total,
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "windows": n_windows,
    }


def normalised(corpus: list[NabFile], scores: dict[str, np.ndarray], profile=STANDARD) -> dict:
    """The best corpus-wide threshold (swept as NAB does) with its normalised score and counts."""
    thresholds, raws = sweep(corpus, scores, profile)
    k = int(np.argmax(raws))
    return score_at(corpus, scores, float(thresholds[k]), profile)
