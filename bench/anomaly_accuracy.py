"""Accuracy and speed of the anomaly detector. Prints figures; run with `python bench/anomaly_accuracy.py`.

1. A labelled cost benchmark generated here (seeded, so every run is the same):
   `--series` daily cost series of `--days` days (Monday start), each built from cost lines
   (2-3 resources a day, plus monthly commitment fees) and aggregated exactly as the service
   does (recurring lines excluded), then run through the service's own monitor code.
   - level: log-normal around 200 a day; noise: 3-8 % Gaussian, multiplicative;
   - weekly seasonality on 60 % of series (weekends at 30-80 % of weekdays);
   - drift on 30 %: 0.2-1 % compound growth a day (normal growth, never labelled);
   - recurring charges on 30 %: a fee of 5-20 days' spend on the 1st of each month, as
     `ChargeFrequency=Recurring` lines (must not alert);
   - intermittent (zero-heavy) series: 10 %, 70 % of days without cost;
   - brand-new series: 10 % start 60-100 days in (normal data only: no alert may fire early);
   - labelled anomalies (0-2 a series, day >= 35, 20+ days apart): spikes of 1-3 days
     (+60-300 % of the level) and level shifts (+50-150 %, permanent); on intermittent series
     a one-day spike of 5-20x the level.
   A detected episode is a true positive when it starts inside a label's window (the spike
   days, or the first 7 days of a shift), each label matched once; every other episode is a
   false positive. Delay = episode start - label start, in days.
2. NAB (realAWSCloudwatch + realKnownCause, from ../shared/data/nab) in streaming mode with
   the `context-surprise` detector and its default parameters (`min_history` = NAB's
   probationary period of each file, as NAB hands every detector): each step's score uses
   values up to that step only. NAB standard-profile score (see bench/anomaly_nab.py): every
   step at or over one corpus-wide threshold is a detection, the threshold swept over every
   distinct score as NAB does. Also printed: the score of each folder at that threshold, and
   a split check (a 27-point grid of the detector's parameters: the best point on one
   folder, scored on the other; and the spread of the corpus score over the grid). The
   cost benchmark keeps `robust-seasonal`, the service's default for daily costs.
`--realistic` runs the realistic set instead (bench/anomaly_realistic.py: noise, weekends,
holidays, ramps, month-start fees, idle days, billing delays; spikes, shifts and drifts), with
the figures per anomaly kind and per nuisance and per sensitivity; `--throughput N` adds the
time to re-evaluate N series when one day arrives.

3. Throughput: series evaluated per second, as a full history evaluation (a backfill or a
   restated month) and as the steady state (one day appended: the stored walk resumes).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import product
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from services.anomaly.detectors import run_detector  # noqa: E402
from services.anomaly.domain import (  # noqa: E402
    DEFAULT_MONITOR,
    CostLine,
    DailySeries,
    SeriesKey,
    evaluate_series,
    findings_for,
)

START = date(2026, 1, 5)  # a Monday
CENT = Decimal("0.01")


@dataclass
class Label:
    start: int
    end: int  # exclusive: the window a detection must start in
    kind: str


@dataclass
class Generated:
    name: str
    lines: list[CostLine]
    labels: list[Label]
    first_day: int
    traits: tuple[str, ...] = ()


def generate(series: int, days: int, seed: int) -> list[Generated]:
    """The labelled benchmark (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for s in range(series):
        level = float(np.exp(rng.gauss(np.log(200), 0.8)))
        noise = rng.uniform(0.03, 0.08)
        weekend = rng.uniform(0.3, 0.8) if rng.random() < 0.6 else 1.0
        growth = rng.uniform(0.002, 0.01) if rng.random() < 0.3 else 0.0
        recurring = rng.random() < 0.3
        intermittent = rng.random() < 0.1
        first = rng.randint(60, 100) if rng.random() < 0.1 else 0
        mult = np.ones(days)
        add = np.zeros(days)
        labels: list[Label] = []
        if first == 0:
            day = rng.randint(35, 50)
            for _ in range(rng.choice((0, 1, 1, 2))):
                if day >= days - 8:
                    break
                if intermittent:
                    add[day] += level * rng.uniform(5, 20)
                    labels.append(Label(day, day + 1, "spike"))
                elif rng.random() < 0.6:
                    n = rng.randint(1, 3)
                    add[day : day + n] += max(level * rng.uniform(0.6, 3.0), 60.0)
                    labels.append(Label(day, day + n, "spike"))
                else:
                    mult[day:] *= 1 + rng.uniform(0.5, 1.5)
                    labels.append(Label(day, day + 7, "level-shift"))
                    break  # one shift a series keeps the labels unambiguous
                day += rng.randint(20, 35)
        lines = []
        resources = rng.randint(2, 3)
        shares = np.array([rng.uniform(0.2, 1.0) for _ in range(resources)])
        shares /= shares.sum()
        for d in range(first, days):
            dt = START + timedelta(days=d)
            value = level * (1 + growth) ** d * mult[d] * (weekend if dt.weekday() >= 5 else 1.0)
            value *= max(0.0, 1 + rng.gauss(0, noise))
            if intermittent:
                value = level * rng.uniform(0.5, 1.5) if rng.random() < 0.3 else 0.0
            value += add[d]
            for r, share in enumerate(shares):
                cost = Decimal(repr(float(value * share))).quantize(CENT)
                lines.append(_line(f"s{s}", f"r{r}", dt, cost, "Usage-Based"))
            if recurring and dt.day == 1:
                fee = Decimal(repr(level * rng.uniform(5, 20))).quantize(CENT)
                lines.append(_line(f"s{s}", "commitment", dt, fee, "Recurring"))
        traits = tuple(
            t
            for t, on in (
                ("new", first > 0),
                ("intermittent", intermittent),
                ("drift", growth > 0),
                ("recurring", recurring),
                ("weekly", weekend < 1),
            )
            if on
        )
        out.append(Generated(f"s{s}", lines, labels, first, traits))
    return out


def _line(service: str, resource: str, day: date, cost: Decimal, frequency: str) -> CostLine:
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return CostLine(
        f"{service}-{resource}-{day}",
        "AWS",
        "999",
        "111",
        service,
        "USD",
        day,
        end,
        cost,
        resource_id=resource,
        charge_frequency=frequency,
    )


def daily(g: Generated, days: int) -> DailySeries:
    """What the store's series query returns: priced, non-recurring cost per day."""
    points: dict[date, Decimal] = {}
    for ln in g.lines:
        if ln.priced and not ln.recurring:
            points[ln.day] = points.get(ln.day, Decimal(0)) + ln.cost
    first = START + timedelta(days=g.first_day)
    return DailySeries.from_points(points, first, START + timedelta(days=days - 1))


def cost_benchmark(series: int, days: int, seed: int) -> dict:
    data = generate(series, days, seed)
    tp = fp = fn = 0
    delays = []
    by_kind: dict[str, list[int]] = {}
    false_by_kind: dict[str, int] = {}
    evaluated = 0
    started = time.perf_counter()
    for g in data:
        s = daily(g, days)
        key = SeriesKey(DEFAULT_MONITOR.name, ("AWS", "111", g.name), "USD")
        found = findings_for(key, DEFAULT_MONITOR, s)
        evaluated += len(s.values)
        starts = [(f.start - START).days for f in found]
        unmatched = set(range(len(starts)))
        for lab in g.labels:
            hit = next(
                (
                    i
                    for i in sorted(unmatched, key=lambda i: starts[i])
                    if lab.start <= starts[i] < lab.end
                ),
                None,
            )
            by_kind.setdefault(lab.kind, [0, 0])
            if hit is None:
                fn += 1
                by_kind[lab.kind][1] += 1
            else:
                tp += 1
                by_kind[lab.kind][0] += 1
                unmatched.discard(hit)
                delays.append(starts[hit] - lab.start)
        fp += len(unmatched)
        if unmatched:
            kind = "+".join(g.traits) or "plain"
            if any(lab.kind == "level-shift" for lab in g.labels):
                kind += " (after a level shift)"
            false_by_kind[kind] = false_by_kind.get(kind, 0) + len(unmatched)
    elapsed = time.perf_counter() - started
    # steady state: each series gains one day and resumes its stored walk
    prepared = []
    for g in data:
        s = daily(g, days)
        head = DailySeries(s.start, s.values[:-1])
        key = SeriesKey(DEFAULT_MONITOR.name, ("AWS", "111", g.name), "USD")
        prepared.append((key, s, evaluate_series(key, DEFAULT_MONITOR, head)[1]))
    started = time.perf_counter()
    for key, s, state in prepared:
        evaluate_series(key, DEFAULT_MONITOR, s, resume=state)
    incremental = len(prepared) / (time.perf_counter() - started)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "series": series,
        "days": days,
        "labels": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mean_delay_days": float(np.mean(delays)) if delays else float("nan"),
        "max_delay_days": max(delays) if delays else 0,
        "recall_by_kind": {k: v[0] / (v[0] + v[1]) for k, v in by_kind.items()},
        "false_positives_on": false_by_kind,
        "series_per_s": series / elapsed,
        "day_evaluations_per_s": evaluated / elapsed,
        "incremental_series_per_s": incremental,
    }


NAB_DETECTOR = "context-surprise"
#: the split check's grid: the detector's own parameters and its alert level
NAB_GRID = {"levels": (8, 16, 32), "order": (2, 3, 4), "threshold": (3.0, 4.0, 5.0)}


def nab_scores(corpus, overrides: dict | None = None) -> dict[str, np.ndarray]:
    """Each file streamed through the detector; `min_history` is NAB's probationary period,
    the one per-file figure NAB hands every detector, and `season` the steps in a week at the
    file's sampling interval (read from its first two timestamps, as a metric monitor knows
    its metric's interval)."""
    return {
        f.name: np.abs(
            run_detector(
                NAB_DETECTOR,
                f.values,
                None,
                {"min_history": f.probation, "season": week_steps(f), **(overrides or {})},
            ).scores
        )
        for f in corpus
    }


def week_steps(f) -> int:
    step = (f.timestamps[1] - f.timestamps[0]).total_seconds()
    return int(round(7 * 86400 / step))


def nab_split_check(corpus) -> dict:
    """Overfitting guard: pick the grid point that scores best on one folder, score it on the
    other (each folder swept on its own), and the spread of the whole grid on the corpus."""
    from anomaly_nab import normalise, sweep

    folders = sorted({f.name.split("/")[0] for f in corpus})
    parts = {d: [f for f in corpus if f.name.startswith(d + "/")] for d in folders}
    best = lambda files, sc: normalise(files, float(sweep(files, sc)[1].max()))  # noqa: E731
    rows = []
    for combo in product(*NAB_GRID.values()):
        params = dict(zip(NAB_GRID, combo))
        sc = nab_scores(corpus, params)
        rows.append((params, {d: best(files, sc) for d, files in parts.items()}, best(corpus, sc)))
    out = {"grid": len(rows), "corpus": [r[2] for r in rows], "transfer": []}
    for tuned in folders:
        params, on, _ = max(rows, key=lambda r: r[1][tuned])
        for other in folders:
            if other != tuned:
                out["transfer"].append((tuned, on[tuned], other, on[other], params))
    return out


def nab_benchmark(root: Path, split: bool) -> dict:
    from anomaly_nab import load_corpus, normalised, score_at

    corpus = load_corpus(root)
    started = time.perf_counter()
    scores = nab_scores(corpus)
    elapsed = time.perf_counter() - started
    best = normalised(corpus, scores)
    best["files"] = len(corpus)
    best["seconds"] = elapsed
    best["steps_per_s"] = sum(len(f.values) for f in corpus) / elapsed
    folders = sorted({f.name.split("/")[0] for f in corpus})
    best["folders"] = {
        d: score_at([f for f in corpus if f.name.startswith(d + "/")], scores, best["threshold"])
        for d in folders
    }
    if split:
        best["split"] = nab_split_check(corpus)
    return best


def realistic_monitor(**params):
    """The default monitor with the bench's holiday calendar configured (and `params`)."""
    import anomaly_realistic as ar

    holidays = tuple(d.isoformat() for d in ar.HOLIDAYS)
    return replace(DEFAULT_MONITOR, params=tuple(sorted({"holidays": holidays, **params}.items())))


def realistic_benchmark(series: int, days: int, seed: int, monitor=None) -> dict:
    """The realistic set (bench/anomaly_realistic.py) through the service's series code."""
    import anomaly_realistic as ar

    monitor = monitor or realistic_monitor()
    data = ar.generate(series, days, seed)
    found = {}
    started = time.perf_counter()
    for rs in data:
        s = ar.daily(rs, days)
        key = SeriesKey(monitor.name, ("AWS", rs.name), "USD")
        found[rs.name] = [
            ar.Reported((f.start - ar.START).days, (f.end - ar.START).days, f.kind)
            for f in findings_for(key, monitor, s)
        ]
    out = ar.score(data, found, days)
    out["seconds"] = time.perf_counter() - started
    return out


def throughput(series: int, days: int, seed: int, monitor=None) -> dict:
    """Time to re-evaluate every series when one day arrives (each resumes its stored walk)."""
    import anomaly_realistic as ar

    monitor = monitor or realistic_monitor()
    base = ar.generate(200, days, seed)
    prepared = []
    for i in range(series):
        s = ar.daily(base[i % len(base)], days)
        key = SeriesKey(monitor.name, ("AWS", f"t{i}"), "USD")
        head = DailySeries(s.start, s.values[:-1])
        prepared.append((key, s, evaluate_series(key, monitor, head)[1]))
    started = time.perf_counter()
    for key, s, state in prepared:
        evaluate_series(key, monitor, s, resume=state)
    return {"series": series, "seconds": time.perf_counter() - started}


def print_realistic(r: dict) -> None:
    print(
        f"realistic cost benchmark: {r['series']} series x {r['days']} days, {r['labels']} labelled anomalies, "
        f"detector `{DEFAULT_MONITOR.detector}`"
    )
    print(
        f"  precision {r['precision']:.3f}  recall {r['recall']:.3f}  F1 {r['f1']:.3f}  "
        f"false alarms {r['fa_per_1000']:.2f} per 1,000 series-days"
    )
    print(
        f"  TP {r['tp']}  FP {r['fp']}  FN {r['fn']}  (re-reports of a shift/drift: {r['repeats']})"
    )
    print(
        "  recall by kind: "
        + ", ".join(f"{k} {a}/{b}" for k, (a, b) in r["recall_by_kind"].items())
    )
    print(
        "  delay by kind (mean, max days): "
        + ", ".join(f"{k} {m:.1f}/{x}" for k, (m, x) in r["delay_by_kind"].items())
    )
    print(f"  false alarms by nuisance: {r['false_by_nuisance']}")
    h, n, f = r["billing_delays"]
    print(f"  billing delays reported as data-quality events: {h}/{n} (wrong ones: {f})")


def _pool(pooled: dict, r: dict) -> None:
    """Add one seed's counts to the pooled totals."""
    pooled["seeds"] = pooled.get("seeds", 0) + 1
    for k in ("tp", "fp", "fn", "repeats"):
        pooled[k] = pooled.get(k, 0) + r[k]
    pooled["series_days"] = pooled.get("series_days", 0) + r["series"] * r["days"]
    pooled["worst_precision"] = min(pooled.get("worst_precision", 1.0), r["precision"])
    pooled["worst_recall"] = min(pooled.get("worst_recall", 1.0), r["recall"])
    pooled["worst_fa"] = max(pooled.get("worst_fa", 0.0), r["fa_per_1000"])
    kinds = pooled.setdefault("kinds", {})
    for k, (a, b) in r["recall_by_kind"].items():
        kinds[k] = (kinds.get(k, (0, 0))[0] + a, kinds.get(k, (0, 0))[1] + b)
    nuisances = pooled.setdefault("nuisances", {})
    for k, v in r["false_by_nuisance"].items():
        nuisances[k] = nuisances.get(k, 0) + v
    dq = pooled.get("dq", (0, 0, 0))
    pooled["dq"] = tuple(a + b for a, b in zip(dq, r["billing_delays"], strict=True))


def _print_pooled(pooled: dict) -> None:
    tp, fp, fn = pooled["tp"], pooled["fp"], pooled["fn"]
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    h, n, f = pooled["dq"]
    print(
        f"pooled over {pooled['seeds']} seeds: precision {precision:.3f}  recall {recall:.3f}  "
        f"false alarms {1000 * fp / pooled['series_days']:.2f}/1,000 series-days  TP/FP/FN {tp}/{fp}/{fn}  "
        f"re-reports {pooled['repeats']}  worst seed: precision {pooled['worst_precision']:.3f}, "
        f"recall {pooled['worst_recall']:.3f}, false alarms {pooled['worst_fa']:.2f}"
    )
    print(
        "  found by kind: "
        + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(pooled["kinds"].items()))
        + f"  delays as data-quality {h}/{n} (wrong {f})"
        + f"  false alarms by nuisance {dict(sorted(pooled['nuisances'].items(), key=lambda kv: -kv[1]))}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--nab", type=Path, default=ROOT.parent / "shared" / "data" / "nab")
    ap.add_argument("--skip-nab", action="store_true")
    ap.add_argument(
        "--skip-split", action="store_true", help="skip NAB's split check (27 detector runs, ~40 s)"
    )
    ap.add_argument(
        "--realistic",
        action="store_true",
        help="the realistic set (bench/anomaly_realistic.py) only",
    )
    ap.add_argument(
        "--throughput", type=int, default=0, help="with --realistic: N series, one day appended"
    )
    ap.add_argument(
        "--seeds", default="", help="with --realistic: comma-separated seeds, one summary line each"
    )
    args = ap.parse_args()
    if args.realistic and args.seeds:
        pooled: dict = {}
        for seed in (int(x) for x in args.seeds.split(",")):
            r = realistic_benchmark(200, 150, seed)
            _pool(pooled, r)
            h, n, f = r["billing_delays"]
            print(
                f"seed {seed}: precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
                f"false alarms {r['fa_per_1000']:.2f}/1,000 series-days  TP/FP/FN {r['tp']}/{r['fp']}/{r['fn']}  "
                f"re-reports {r['repeats']}  found "
                + ", ".join(f"{k} {a}/{b}" for k, (a, b) in r["recall_by_kind"].items())
                + f"  delays as data-quality {h}/{n} (wrong {f})  false alarms by nuisance {r['false_by_nuisance']}",
                flush=True,
            )
        _print_pooled(pooled)
        return
    if args.realistic:
        seed = args.seed if args.seed != 7 else 2020
        print_realistic(realistic_benchmark(200, 150, seed))
        for level in ("low", "medium", "high"):
            r = realistic_benchmark(200, 150, seed, realistic_monitor(sensitivity=level))
            print(
                f"  sensitivity {level}: precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
                f"false alarms {r['fa_per_1000']:.2f} per 1,000 series-days "
                f"(= {r['fa_per_1000'] * 0.365:.3f} per series-year)"
            )
        if args.throughput:
            t = throughput(args.throughput, 150, 2020)
            print(
                f"throughput: {t['series']} series re-evaluated (one day appended) in {t['seconds']:.1f} s"
            )
        return

    r = cost_benchmark(args.series, args.days, args.seed)
    print(
        f"cost benchmark, detector `{DEFAULT_MONITOR.detector}`: {r['series']} series x {r['days']} days, "
        f"{r['labels']} labelled anomalies"
    )
    print(
        f"  precision {r['precision']:.3f}  recall {r['recall']:.3f}  F1 {r['f1']:.3f}  (target F1 >= 0.95)"
    )
    print(
        f"  TP {r['tp']}  FP {r['fp']}  FN {r['fn']}  false positives on: {r['false_positives_on']}"
    )
    print(
        "  recall by kind: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["recall_by_kind"].items()))
    )
    print(
        f"  detection delay: mean {r['mean_delay_days']:.2f} days, max {r['max_delay_days']} days"
    )
    print(
        f"  throughput: {r['series_per_s']:.1f} series/s ({r['days']}-day histories), "
        f"{r['day_evaluations_per_s']:.0f} day-evaluations/s; "
        f"{r['incremental_series_per_s']:.0f} series/s when a day is appended (resumed walk)"
    )
    if not args.skip_nab and args.nab.exists():
        n = nab_benchmark(args.nab, split=not args.skip_split)
        print(
            f"NAB standard profile, streaming, detector `{NAB_DETECTOR}` (defaults): score {n['score']:.1f} "
            "(target >= 70; on these 24 files NAB's published scores give ARTime 67.7, Numenta HTM 66.5, CAD OSE 61.6)"
        )
        print(
            f"  {n['files']} files, {n['windows']} windows: TP {n['tp']}  FN {n['fn']}  FP {n['fp']}  "
            f"threshold {n['threshold']:.2f}; {n['seconds']:.1f} s, {n['steps_per_s']:.0f} steps/s"
        )
        for folder, r in n["folders"].items():
            print(
                f"  {folder} at that threshold: score {r['score']:.1f}  "
                f"({r['windows']} windows: TP {r['tp']}  FN {r['fn']}  FP {r['fp']})"
            )
        if "split" in n:
            sp = n["split"]
            c = np.array(sp["corpus"])
            print(f"  split check over a {sp['grid']}-point grid {NAB_GRID}:")
            print(
                f"    corpus score across the grid: median {np.median(c):.1f}, min {c.min():.1f}, max {c.max():.1f}"
            )
            for tuned, own, other, transfer, params in sp["transfer"]:
                print(f"    tuned on {tuned} ({own:.1f}, {params}) -> {other} {transfer:.1f}")


if __name__ == "__main__":
    main()
