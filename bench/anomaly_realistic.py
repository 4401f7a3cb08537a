"""The realistic daily-cost benchmark (`bench/anomaly_accuracy.py --realistic`).

Built the way real daily cost looks, from cost lines aggregated as the service does:
- `--series` (200) series, one per account x service, over `--days` (150) days from a Monday;
  level log-normal around 300 a day;
- multiplicative log-normal noise, sigma 4-14 % per series;
- weekend dips (60 % of series: weekends at 45-90 % of weekdays) and the same dip on the days
  of a holiday calendar (HOLIDAYS);
- planned growth ramps on 25 % of series: +15-35 % over 30 days, then kept (never labelled);
- month-start commitment fees on 30 % of series: two thirds as `Recurring` lines (which the
  service leaves out), one third as usage lines adding 20-50 % of a day on the 1st (a monthly
  licence billed as usage: a nuisance, never labelled);
- intermittent services on 15 % of series: about a third of days at zero (a zero-cost line);
- one-day billing delays (about 25): a day's lines arrive dated the next day, so one day is
  zero (or, for half of them, has no line at all) and the next is double (never labelled);
- labelled anomalies, at least 24: spikes of 1-3 days, level shifts (permanent) and drifts
  (climbing linearly over 7-10 days, then staying), each adding at least 60 a day and at
  least 6 x the series' own noise, on series without a ramp; spikes also on intermittent ones.

A reported anomaly (not a data-quality event) is a true positive when its window overlaps the
label's window (spike days; a shift's first 7 days; a drift's climb) and is the first report
matching that label; further reports overlapping the label's lasting effect (a shift or drift
reported again later) are re-reports, counted as false positives. Every other report is a
false alarm, attributed to the nuisance present on its first day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np

from services.anomaly.domain import CostLine, DailySeries

START = date(2026, 1, 5)  # a Monday
CENT = Decimal("0.01")
HOLIDAYS = (date(2026, 1, 19), date(2026, 2, 16), date(2026, 4, 3), date(2026, 5, 25))


@dataclass
class Label:
    start: int
    end: int  # exclusive: the window a report must overlap
    kind: str  # spike, level-shift, drift


@dataclass
class RSeries:
    name: str
    lines: list[CostLine]
    labels: list[Label]
    noise: float
    traits: set[str] = field(default_factory=set)
    ramp: tuple[int, int] | None = None
    delays: list[int] = field(default_factory=list)  # the zero day of each billing delay
    fee_days: list[int] = field(default_factory=list)  # usage-billed month-start fees


def _line(
    series: str, resource: str, day: date, cost: Decimal, frequency: str = "Usage-Based"
) -> CostLine:
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return CostLine(
        f"{series}-{resource}-{day}",
        "AWS",
        "999",
        f"acct-{series}",
        f"svc-{series}",
        "USD",
        day,
        end,
        cost,
        resource_id=resource,
        charge_frequency=frequency,
    )


def generate(  # noqa: C901 - one loop draws every kind of synthetic series and anomaly; split, it reads worse
    series: int = 200, days: int = 150, seed: int = 2020, anomalies: int = 30
) -> list[RSeries]:
    rng = random.Random(seed)
    out: list[RSeries] = []
    specs = []
    for _s in range(series):
        level = float(np.exp(rng.gauss(np.log(300), 0.9)))
        noise = rng.uniform(0.04, 0.14)
        weekend = rng.uniform(0.45, 0.9) if rng.random() < 0.6 else 1.0
        intermittent = rng.random() < 0.15
        ramp = None
        if not intermittent and rng.random() < 0.25:
            r0 = rng.randint(30, days - 40)
            ramp = (r0, r0 + 30, rng.uniform(0.15, 0.35))
        fee = rng.random() < 0.3
        fee_usage = fee and rng.random() < 1 / 3
        specs.append([level, noise, weekend, intermittent, ramp, fee, fee_usage])
    # labelled anomalies: spread over distinct series (regular ones; a few on intermittent ones)
    regular = [s for s in range(series) if specs[s][4] is None and not specs[s][3]]
    sparse = [s for s in range(series) if specs[s][3]]
    rng.shuffle(regular)
    rng.shuffle(sparse)
    kinds = ["spike", "level-shift", "drift"]
    plan: dict[int, tuple[str, int, int]] = {}
    for i in range(anomalies):
        kind = kinds[i % 3]
        s = sparse.pop() if kind == "spike" and i % 4 == 0 and sparse else regular.pop()
        day = rng.randint(40, days - 25)
        length = {"spike": rng.randint(1, 3), "level-shift": 7, "drift": rng.randint(7, 10)}[kind]
        plan[s] = (kind, day, length)
    delay_series = rng.sample(range(series), 25)
    for s in range(series):
        level, noise, weekend, intermittent, ramp, fee, fee_usage = specs[s]
        name = f"s{s:03d}"
        rs = RSeries(name, [], [], noise)
        mult = np.ones(days)
        add = np.zeros(days)
        if ramp:
            r0, r1, g = ramp
            mult[r0:r1] *= 1 + g * (np.arange(r1 - r0) + 1) / (r1 - r0)
            mult[r1:] *= 1 + g
            rs.ramp = (r0, r1)
            rs.traits.add("ramp")
        if intermittent:
            rs.traits.add("intermittent")
        if weekend < 1:
            rs.traits.add("weekly")
        if s in plan:
            kind, d0, length = plan[s]
            # large against the series' own noise and at least 60 a day
            amount = max(60.0, level * max(6 * noise, 0.35) * rng.uniform(1.0, 2.0))
            if kind == "spike":
                add[d0 : d0 + length] += amount
            elif kind == "level-shift":
                add[d0:] += amount
            else:
                add[d0 : d0 + length] += amount * (np.arange(length) + 1) / length
                add[d0 + length :] += amount
            rs.labels.append(Label(d0, d0 + length, kind))
        delayed: set[int] = set()
        if s in delay_series:
            d = rng.randint(20, days - 3)
            if not any(lab.start - 2 <= d <= lab.end + 1 for lab in rs.labels):
                delayed.add(d)
                rs.delays.append(d)
        carry: list[tuple[str, Decimal]] = []
        for d in range(days):
            dt = START + timedelta(days=d)
            quiet = dt.weekday() >= 5 or dt in HOLIDAYS
            value = (
                level * mult[d] * (weekend if quiet else 1.0) * float(np.exp(rng.gauss(0, noise)))
            )
            if intermittent and rng.random() < 1 / 3 and add[d] == 0:
                value = 0.0
            value += add[d]
            costs = [("r0", value * 0.7), ("r1", value * 0.3)]
            if fee and dt.day == 1:
                if fee_usage:
                    costs.append(("licence", level * rng.uniform(0.2, 0.5)))
                    rs.fee_days.append(d)
                else:
                    rs.lines.append(
                        _line(
                            name,
                            "commitment",
                            dt,
                            Decimal(repr(level * rng.uniform(5, 20))).quantize(CENT),
                            "Recurring",
                        )
                    )
            if d in delayed:
                carry = costs
                if rng.random() < 0.5:  # a zero line, else no line at all
                    rs.lines.append(_line(name, "tax", dt, Decimal("0.00")))
                continue
            for res, c in costs:
                rs.lines.append(_line(name, res, dt, Decimal(repr(float(c))).quantize(CENT)))
            for res, c in carry:  # the late lines, dated the day they arrived
                rs.lines.append(
                    _line(name, res + "-late", dt, Decimal(repr(float(c))).quantize(CENT))
                )
            carry = []
        out.append(rs)
    return out


def daily(rs: RSeries, days: int) -> DailySeries:
    points: dict[date, Decimal] = {}
    for ln in rs.lines:
        if ln.priced and not ln.recurring:
            points[ln.day] = points.get(ln.day, Decimal(0)) + ln.cost
    return DailySeries.from_points(points, START, START + timedelta(days=days - 1))


def nuisance_of(rs: RSeries, day: int) -> str:
    """What a false alarm starting on `day` is most likely due to."""
    dt = START + timedelta(days=day)
    if any(d <= day <= d + 1 for d in rs.delays):
        return "billing delay"
    if any(lab.kind != "spike" and day >= lab.start for lab in rs.labels):
        return "after a shift/drift"
    if dt.day <= 2 and rs.fee_days:
        return "month start"
    if "intermittent" in rs.traits:
        return "intermittent"
    if rs.ramp and rs.ramp[0] <= day < rs.ramp[1] + 14:
        return "ramp"
    if any(abs((dt - h).days) <= 1 for h in HOLIDAYS) and "weekly" in rs.traits:
        return "holiday"
    if dt.weekday() in (0, 5, 6) and "weekly" in rs.traits:
        return "weekend edge"
    return "noise"


@dataclass
class Reported:
    start: int
    end: int
    kind: str


def score(data: list[RSeries], found: dict[str, list[Reported]], days: int) -> dict:
    """Precision, recall, false alarms per 1,000 series-days, delays, per kind and nuisance."""
    tp = fn = fp = 0
    kinds: dict[str, list[int]] = {}
    delays: dict[str, list[int]] = {}
    nuisances: dict[str, int] = {}
    repeats = 0
    dq_hits = dq_events = dq_false = 0
    for rs in data:
        reps = [r for r in found.get(rs.name, []) if r.kind != "billing-delay"]
        dqs = [r for r in found.get(rs.name, []) if r.kind == "billing-delay"]
        dq_events += len(rs.delays)
        dq_hits += sum(any(r.start <= d + 1 and r.end > d for r in dqs) for d in rs.delays)
        dq_false += sum(not any(r.start <= d + 1 and r.end > d for d in rs.delays) for r in dqs)
        used: set[int] = set()
        for lab in rs.labels:
            k = kinds.setdefault(lab.kind, [0, 0])
            hit = next(
                (
                    i
                    for i, r in enumerate(reps)
                    if i not in used and r.start < lab.end + 2 and r.end > lab.start
                ),
                None,
            )
            if hit is None:
                fn += 1
                k[1] += 1
                continue
            tp += 1
            k[0] += 1
            used.add(hit)
            delays.setdefault(lab.kind, []).append(max(0, reps[hit].start - lab.start))
            if lab.kind != "spike":
                again = [i for i, r in enumerate(reps) if i not in used and r.start >= lab.start]
                repeats += len(again)
                used.update(again)
                fp += len(again)
                nuisances["re-report of a shift/drift"] = nuisances.get(
                    "re-report of a shift/drift", 0
                ) + len(again)
        for i, r in enumerate(reps):
            if i in used:
                continue
            fp += 1
            n = nuisance_of(rs, r.start)
            nuisances[n] = nuisances.get(n, 0) + 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "series": len(data),
        "days": days,
        "labels": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "fa_per_1000": 1000 * fp / (len(data) * days),
        "recall_by_kind": {k: (v[0], v[0] + v[1]) for k, v in sorted(kinds.items())},
        "delay_by_kind": {k: (float(np.mean(v)), max(v)) for k, v in sorted(delays.items())},
        "false_by_nuisance": dict(sorted(nuisances.items(), key=lambda kv: -kv[1])),
        "repeats": repeats,
        "billing_delays": (dq_hits, dq_events, dq_false),
    }
