"""Anomaly domain: cost lines, monitors, series, findings and their life cycle. No I/O.

A monitor slices cost lines into daily series (one per dimension value and currency). A
detector (see `detectors`) finds episodes in each series; `findings_for` turns episodes into
money, and `reconcile` compares findings with what was raised before: new ones are
detected, changed ones updated (an ongoing anomaly grows its window and impact instead of
raising a new one), vanished ones resolved (restated data).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from services.anomaly.detectors import WalkState, get_detector

CENT = Decimal("0.01")
RECURRING = "recurring"

#: dimension name -> CostLine attribute; `tag:KEY` reads a tag
DIMENSIONS = {
    "ProviderName": "provider",
    "BillingAccountId": "billing_account_id",
    "SubAccountId": "account",
    "ServiceName": "service_name",
    "ServiceCategory": "service_category",
    "RegionId": "region_id",
    "ResourceType": "resource_type",
    "SkuId": "sku_id",
    "ChargeCategory": "charge_category",
}
#: the sub-dimensions root causes are reported on, finest last
ROOT_CAUSE_DIMENSIONS = ("SubAccountId", "RegionId", "SkuId", "ResourceId")


@dataclass(frozen=True)
class CostLine:
    """One priced record as the anomaly service keeps it (cost 0 when unpriced)."""

    record_id: str
    provider: str
    billing_account_id: str
    account: str  # SubAccountId, or BillingAccountId when the row has none
    service_name: str
    currency: str
    day: date
    period_end: datetime
    cost: Decimal
    priced: bool = True
    service_category: str | None = None
    region_id: str | None = None
    sku_id: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None
    charge_category: str | None = None
    charge_frequency: str | None = None
    billing_scope: str | None = None
    billing_scope_version: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def recurring(self) -> bool:
        return (self.charge_frequency or "").strip().lower() == RECURRING


def dimension_value(line: CostLine, name: str) -> str:
    """The value of dimension `name` on a line ('' when the line has none)."""
    if name.startswith("tag:"):
        return line.tags.get(name[4:], "")
    if name == "ResourceId":
        return line.resource_id or ""
    return getattr(line, DIMENSIONS[name]) or ""


def check_dimension(name: str) -> str:
    """`name` if it is a known dimension (or `tag:KEY`), else a ValueError."""
    if name in DIMENSIONS or name == "ResourceId" or (name.startswith("tag:") and len(name) > 4):
        return name
    raise ValueError(f"unknown dimension {name!r}: use one of {sorted(DIMENSIONS)} or tag:KEY")


@dataclass(frozen=True)
class Monitor:
    """What to watch: a dimensional monitor (one series per value of `dimensions`, optionally
    only the `top` values by recent cost) or a custom one (`filters`, no dimensions: one series)."""

    name: str
    dimensions: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()
    top: int | None = None
    detector: str = "robust-seasonal"
    params: tuple[tuple[str, object], ...] = ()

    def matches(self, line: CostLine) -> bool:
        return all(dimension_value(line, k) == v for k, v in self.filters)

    def dimension_of(self, values: Sequence[str]) -> dict[str, str]:
        dims = dict(zip(self.dimensions, values, strict=True))
        return dims or dict(self.filters) or {"Monitor": self.name}


DEFAULT_MONITOR = Monitor("services", ("ProviderName", "SubAccountId", "ServiceName"))


@dataclass(frozen=True)
class SeriesKey:
    monitor: str
    values: tuple[str, ...]
    currency: str


def affected_series(
    lines: Iterable[CostLine], monitors: Sequence[Monitor]
) -> dict[SeriesKey, list[CostLine]]:
    """The series each line belongs to, per monitor: what a batch asks to re-evaluate."""
    out: dict[SeriesKey, list[CostLine]] = {}
    for line in lines:
        for m in monitors:
            if m.matches(line):
                key = SeriesKey(
                    m.name, tuple(dimension_value(line, d) for d in m.dimensions), line.currency
                )
                out.setdefault(key, []).append(line)
    return out


@dataclass(frozen=True)
class StoredLine:
    """What the stored copy of a redelivered record added to its day: the delta of a batch
    subtracts it, so a record delivered twice (or repriced) is counted once."""

    day: date
    cost: Decimal  # its detection cost: 0 when unpriced, recurring or of a superseded version


def detection_cost(line: CostLine) -> Decimal:
    """What a live line adds to its day's series point (recurring charges are not anomalies)."""
    return line.cost if line.priced and not line.recurring else Decimal(0)


def is_live(line: CostLine, versions: Mapping[str, int]) -> bool:
    """Whether a line belongs to the newest version of its billing scope (or to none)."""
    if line.billing_scope is None or line.billing_scope_version is None:
        return True
    return (
        versions.get(line.billing_scope, line.billing_scope_version) == line.billing_scope_version
    )


def point_deltas(
    members: Iterable[CostLine], previous: Mapping[str, StoredLine], versions: Mapping[str, int]
) -> dict[date, tuple[Decimal, datetime | None]]:
    """Per day, what a batch's lines change in one series: cost added (earlier copies of the
    same records subtracted) and the latest period end seen. Days only touched by a
    subtraction carry no period end."""
    out: dict[date, tuple[Decimal, datetime | None]] = {}
    for line in members:
        old = previous.get(line.record_id)
        if old is not None and old.cost:
            cost, high = out.get(old.day, (Decimal(0), None))
            out[old.day] = (cost - old.cost, high)
        if not is_live(line, versions):
            continue
        cost, high = out.get(line.day, (Decimal(0), None))
        out[line.day] = (
            cost + detection_cost(line),
            line.period_end if high is None else max(high, line.period_end),
        )
    return out


def anomaly_id(monitor: str, dimension: Mapping[str, str], start: date) -> str:
    """Stable id per (monitor, dimension, start day)."""
    text = json.dumps(
        [monitor, sorted(dimension.items()), start.isoformat()], separators=(",", ":")
    )
    return "anm-" + hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class SeverityPolicy:
    """Severity from impact in money and in percent: each gives a tier (0-3) and the
    severity is their rounded-down mean, so a large but tiny-percent change or a huge
    percent on pennies stays moderate."""

    money: tuple[Decimal, Decimal, Decimal] = (Decimal(100), Decimal(1000), Decimal(10000))
    pct: tuple[Decimal, Decimal, Decimal] = (Decimal(20), Decimal(50), Decimal(100))

    def of(self, impact: Decimal, impact_pct: Decimal | None) -> str:
        m = sum(abs(impact) >= t for t in self.money)
        p = 3 if impact_pct is None else sum(abs(impact_pct) >= t for t in self.pct)
        return ("low", "medium", "high", "critical")[(m + p) // 2]


@dataclass(frozen=True)
class Finding:
    """One anomalous window of a series, in money."""

    key: SeriesKey
    start: date
    end: date  # exclusive
    expected: Decimal
    actual: Decimal
    score: float
    kind: str
    detector: str
    baseline_start: date  # training days used for root-cause shares: [baseline_start, start)

    @property
    def impact(self) -> Decimal:
        return self.actual - self.expected

    @property
    def impact_pct(self) -> Decimal | None:
        if self.expected == 0:
            return None
        return (self.impact / self.expected * 100).quantize(CENT, ROUND_HALF_EVEN)


@dataclass(frozen=True)
class DailySeries:
    """Daily cost of one series on consecutive days; None where the series has no line
    (late data or no usage: the detectors skip such days instead of reading a zero)."""

    start: date
    values: tuple[Decimal | None, ...]

    @classmethod
    def from_points(cls, points: Mapping[date, Decimal], first: date, last: date) -> DailySeries:
        n = (last - first).days + 1
        return cls(first, tuple(points.get(first + timedelta(d)) for d in range(max(n, 0))))

    def day(self, i: int) -> date:
        return self.start + timedelta(days=i)


def findings_for(key: SeriesKey, monitor: Monitor, series: DailySeries, **kw) -> list[Finding]:
    """`evaluate_series` without the walk state."""
    return evaluate_series(key, monitor, series, **kw)[0]


def evaluate_series(
    key: SeriesKey,
    monitor: Monitor,
    series: DailySeries,
    *,
    baseline_days: int = 28,
    partial: tuple[Decimal, float] | None = None,
    intraday_factor: float = 2.0,
    resume: WalkState | None = None,
) -> tuple[list[Finding], WalkState | None]:
    """Run the monitor's detector over a series and express its episodes in money.

    `resume` is the walk state of an earlier evaluation of the same series (same start day
    and monitor): when the series only gained days, only those are computed.

    `partial` is the day after the series (cost so far, share of the day covered): its
    run-rate (cost / share) is judged like a full day, and raises or extends an anomaly only
    when it is `intraday_factor` times further out than the usual threshold (early warning).
    """
    if not series.values:
        return [], None
    floats = [float("nan") if v is None else float(v) for v in series.values]
    last = len(floats)
    if partial is not None:
        floats.append(float(partial[0]) / partial[1])
    entry = get_detector(monitor.detector)
    params = entry.params(**dict(monitor.params))
    days = [series.day(i) for i in range(len(floats))]
    holidays = {date.fromisoformat(h) for h in getattr(params, "holidays", ())}
    phase = [6 if d in holidays else d.weekday() for d in days]  # a holiday costs like a Sunday
    month_start = [d.day == 1 for d in days]
    rebases = {date.fromisoformat(h) for h in getattr(params, "rebase", ())}
    rebase = [d in rebases for d in days]
    detection = entry.run(
        floats, phase, params, resume=resume, keep=last, month_start=month_start, rebase=rebase
    )
    found = []
    for ep in detection.episodes:
        end, kind = ep.end, ep.kind
        if end == last + 1 and abs(detection.scores[last]) < intraday_factor * params.threshold:
            end = last  # the partial day is not far enough out yet
        if end <= ep.start:
            continue
        full = slice(ep.start, min(end, last))
        actual = sum((v for v in series.values[full] if v is not None), Decimal(0))
        window = detection.expected[full]
        exp = float(window[~np.isnan(window)].sum())
        if end == last + 1 and partial is not None:
            actual += partial[0]
            exp += float(detection.expected[last]) * partial[1]
            kind = "intraday" if ep.start == last else kind
        found.append(
            Finding(
                key=key,
                start=series.day(ep.start),
                end=series.day(end),
                expected=Decimal(repr(exp)).quantize(CENT),
                actual=actual,
                score=round(ep.score, 3),
                kind=kind,
                detector=monitor.detector,
                baseline_start=series.day(max(0, ep.start - baseline_days)),
            )
        )
    return found, detection.state


def root_causes(
    impact: Decimal,
    expected: Decimal,
    window: Mapping[tuple[tuple[str, str], ...], Decimal],
    baseline: Mapping[tuple[tuple[str, str], ...], Decimal],
    *,
    top: int = 5,
) -> list[tuple[dict[str, str], Decimal]]:
    """Contributions of sub-dimensions to `impact`, adding up to it to the cent.

    Each sub-dimension is expected to keep its share of the baseline: its contribution is
    its actual cost in the window minus `expected` x its baseline share. The `top` largest
    are listed and the rest is one `(other)` entry; rounding leftovers go to the largest.
    """
    base_total = sum(baseline.values(), Decimal(0))
    keys = set(window) | set(baseline)
    contrib: dict[tuple[tuple[str, str], ...], Decimal] = {}
    for k in keys:
        share = baseline.get(k, Decimal(0)) / base_total if base_total else Decimal(0)
        contrib[k] = window.get(k, Decimal(0)) - expected * share
    if not base_total and keys:
        # nothing expected per sub-dimension: spread the expected cost by window shares
        win_total = sum(window.values(), Decimal(0))
        for k in keys:
            share = window.get(k, Decimal(0)) / win_total if win_total else Decimal(1) / len(keys)
            contrib[k] = window.get(k, Decimal(0)) - expected * share
    ranked = sorted(contrib.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    listed = [(dict(k), v.quantize(CENT, ROUND_HALF_EVEN)) for k, v in ranked[:top]]
    rest = sum((v for _, v in ranked[top:]), Decimal(0))
    if ranked[top:]:
        listed.append(
            ({"Other": f"{len(ranked) - top} more"}, rest.quantize(CENT, ROUND_HALF_EVEN))
        )
    if listed:
        gap = impact - sum((v for _, v in listed), Decimal(0))
        listed[0] = (listed[0][0], listed[0][1] + gap)
    return listed


@dataclass(frozen=True)
class Raised:
    """An anomaly as the service last published it."""

    anomaly_id: str
    key: SeriesKey
    start: date
    end: date
    expected: Decimal
    actual: Decimal
    status: str
    feedback: str | None = None


@dataclass(frozen=True)
class Change:
    """What `reconcile` decided for one anomaly: `detected`, `updated` or `resolved`."""

    kind: str
    anomaly_id: str
    status: str
    finding: Finding | None
    previous: Raised | None = None


def status_of(finding: Finding, through: date) -> str:
    """`ongoing` while the window reaches the last complete day, `open` once it has ended."""
    return "ongoing" if finding.end > through else "open"


def reconcile(
    key: SeriesKey,
    dimension: Mapping[str, str],
    findings: Sequence[Finding],
    raised: Sequence[Raised],
    *,
    through: date,
    evaluated_from: date,
    suppress_until: date | None = None,
) -> list[Change]:
    """Compare fresh findings of one series with what was raised before.

    Findings starting before `suppress_until` (feedback 'no' or 'planned' on an earlier
    anomaly of the series) are not raised. Raised anomalies inside the evaluated range that
    no finding confirms any more are resolved. An anomaly with feedback keeps its status
    (`acknowledged`) while it is updated.
    """
    by_id = {r.anomaly_id: r for r in raised}
    changes: list[Change] = []
    seen = set()
    for f in findings:
        aid = anomaly_id(key.monitor, dimension, f.start)
        seen.add(aid)
        before = by_id.get(aid)
        if before is None:
            if suppress_until is not None and f.start <= suppress_until:
                continue
            changes.append(Change("detected", aid, status_of(f, through), f))
            continue
        status = "acknowledged" if before.feedback else status_of(f, through)
        if (before.end, before.actual, before.expected, before.status) != (
            f.end,
            f.actual,
            f.expected,
            status,
        ):
            changes.append(Change("updated", aid, status, f, before))
    for r in raised:
        if r.feedback:
            continue  # judged by a person (its feedback may have changed the model): kept as judged
        if r.anomaly_id not in seen and r.status != "resolved" and r.start >= evaluated_from:
            changes.append(Change("resolved", r.anomaly_id, "resolved", None, r))
    return changes


#: how much each "no" on a series raises its threshold (at most NO_LIMIT of them count)
NO_STEP = 1.25
NO_LIMIT = 3


def taught(
    monitor: Monitor, raised: Sequence[Raised], kinds: Mapping[str, str] | None = None
) -> Monitor:
    """The monitor as feedback on one series has taught it: each "no" (a false alarm) raises
    the series' threshold by `NO_STEP` (up to `NO_LIMIT` times) so the pattern that fooled it
    needs more evidence; each "planned" rebases the model at the start of that anomaly, so the
    planned level is normal at once. Only detectors with those parameters are taught."""
    entry = get_detector(monitor.detector)
    fields = entry.params.model_fields
    params = dict(monitor.params)
    nos = sum(1 for r in raised if r.feedback == "no")
    planned = sorted({r.start.isoformat() for r in raised if r.feedback == "planned"})
    if nos and "threshold" in fields:
        base = entry.params(**params).threshold
        params.pop("sensitivity", None)
        params["threshold"] = round(base * NO_STEP ** min(nos, NO_LIMIT), 3)
    if planned and "rebase" in fields:
        earlier = params.get("rebase", ())
        params["rebase"] = tuple(
            sorted({*(earlier if isinstance(earlier, tuple) else ()), *planned})
        )
    if params == dict(monitor.params):
        return monitor
    return replace(monitor, params=tuple(sorted(params.items())))


def complete_through(watermark: datetime | None, lateness: timedelta = timedelta(0)) -> date | None:
    """The last complete day: every charge period up to its end has been seen (minus lateness)."""
    if watermark is None:
        return None
    edge = watermark - lateness
    day = edge.date()
    # a day is complete once the watermark reaches its end (midnight of the next day)
    return day - timedelta(days=1)
