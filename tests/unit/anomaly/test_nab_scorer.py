"""bench/anomaly_nab.py against NAB's documented scoring, on small hand-made files."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from anomaly_nab import (  # noqa: E402
    NabFile,
    normalised,
    raw_score,
    scaled_sigmoid,
    sweep,
    weights,
)

T0 = datetime(2024, 1, 1)


def nab_file(name: str, n: int, windows: list[tuple[int, int]]) -> NabFile:
    return NabFile(name, [T0 + timedelta(minutes=5 * i) for i in range(n)], np.zeros(n), windows)


def test_probation_is_15_percent_of_the_file_and_at_most_750_rows():
    assert nab_file("a", 1000, []).probation == 150
    assert nab_file("b", 20000, []).probation == 750


def test_first_detection_in_a_window_earns_the_scaled_sigmoid_and_later_ones_nothing():
    f = nab_file("a", 1000, [(500, 599)])
    w = weights(f)
    assert w[500] == pytest.approx(1.0)  # left edge: A_TP (scaled by sigma(-1))
    assert w[599] == pytest.approx(scaled_sigmoid(-1 / 100) / scaled_sigmoid(-1.0))
    det = np.zeros(1000, dtype=bool)
    det[[550, 520, 590]] = True
    score, tp, fn, fp = raw_score(f, w, det)
    assert (tp, fn, fp) == (1, 0, 0)
    assert score == pytest.approx(w[520])


def test_false_positives_cost_less_right_after_a_window_and_the_full_weight_before_any():
    f = nab_file("a", 1000, [(500, 599)])
    w = weights(f)
    assert w[300] == pytest.approx(-0.11)  # before any window
    assert w[600] == pytest.approx(0.11 * scaled_sigmoid(1 / 99))  # just after: almost free
    assert w[900] == pytest.approx(-0.11)  # more than 3 window widths after
    assert np.isnan(w[:150]).all()  # probation: not scored


def test_the_sweep_equals_scoring_every_threshold_one_by_one():
    rng = np.random.default_rng(0)
    corpus = [
        nab_file("a", 1000, [(400, 449), (700, 749)]),
        nab_file("b", 600, [(300, 359)]),
        nab_file("c", 800, []),
    ]
    scores = {f.name: np.round(rng.random(len(f.values)) ** 8, 2) for f in corpus}
    thresholds, raws = sweep(corpus, scores)
    for th, raw in zip(thresholds, raws):
        brute = sum(raw_score(f, weights(f), scores[f.name] >= th)[0] for f in corpus)
        assert raw == pytest.approx(brute)
    best = normalised(corpus, scores)
    assert best["score"] == pytest.approx(100 * (raws.max() + 3) / 6)


def test_null_detector_scores_0_and_perfect_detector_100():
    corpus = [nab_file("a", 1000, [(400, 449), (700, 749)])]
    assert normalised(corpus, {"a": np.zeros(1000)})["score"] == pytest.approx(0.0)
    perfect = np.zeros(1000)
    perfect[[400, 700]] = 1.0
    assert normalised(corpus, {"a": perfect})["score"] == pytest.approx(100.0)
