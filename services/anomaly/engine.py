"""Evaluation of a batch: store its lines, re-run the monitors of the series it touched,
and return the anomalies to publish (each with the line that caused it, for tracing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from schemas.anomaly import AnomalyV1, RootCauseV1
from schemas.pricing import PricedRecordV1
from services.anomaly.detectors import STATE_VERSION
from services.anomaly.domain import (
    ROOT_CAUSE_DIMENSIONS,
    CostLine,
    DailySeries,
    Finding,
    Monitor,
    SeriesKey,
    SeverityPolicy,
    affected_series,
    complete_through,
    evaluate_series,
    point_deltas,
    reconcile,
    root_causes,
    taught,
)
from services.anomaly.store import Prefetched, Tx

#: the kind of a billing delay's finding: a data-quality event, stored but not published
DATA_QUALITY = "billing-delay"
#: series evaluated together: their points, walk states and raised anomalies are read in one
#: go, so a batch touching many series holds at most this many series' history at a time
SERIES_CHUNK = 500
#: a single line beyond this is an error upstream, not spend (and would overflow float maths)
MAX_COST = Decimal("1e15")


def line_from_record(rec: PricedRecordV1) -> CostLine:
    """The anomaly service's view of a priced record; unpriced rows (`none`) cost nothing."""
    billed = rec.BilledCost if rec.x_PriceSource != "none" else None
    priced = billed is not None
    if billed is not None and abs(billed) >= MAX_COST:
        raise ValueError(f"BilledCost {billed} is out of range (|cost| < 1e15)")
    start = rec.ChargePeriodStart.astimezone(UTC)
    return CostLine(
        record_id=rec.x_RecordId,
        provider=rec.ProviderName,
        billing_account_id=rec.BillingAccountId,
        account=rec.SubAccountId or rec.BillingAccountId,
        service_name=rec.ServiceName,
        currency=rec.BillingCurrency,
        day=start.date(),
        period_end=rec.ChargePeriodEnd.astimezone(UTC),
        cost=billed if billed is not None else Decimal(0),
        priced=priced,
        service_category=rec.ServiceCategory,
        region_id=rec.RegionId,
        sku_id=rec.SkuId,
        resource_id=rec.ResourceId,
        resource_type=rec.ResourceType,
        charge_category=str(rec.ChargeCategory),
        charge_frequency=rec.ChargeFrequency,
        billing_scope=rec.x_BillingScope,
        billing_scope_version=rec.x_BillingScopeVersion,
        tags=dict(rec.Tags or {}),
    )


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


@dataclass
class Outcome:
    """One anomaly to publish and the batch line that led to it."""

    anomaly: AnomalyV1
    cause: CostLine | None
    change: str  # detected, updated or resolved


class Evaluator:
    """Runs the monitors over the series a batch touched, inside the batch's transaction."""

    def __init__(
        self,
        monitors: Callable[[], Sequence[Monitor]],
        *,
        max_days: int = 400,
        suppress_days: int = 30,
        lateness: timedelta = timedelta(0),
        severity: SeverityPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        series_chunk: int = SERIES_CHUNK,
    ) -> None:
        self._monitors = monitors
        self.series_chunk = series_chunk
        self.max_days = max_days
        self.suppress_days = suppress_days
        self.lateness = lateness
        self.severity = severity or SeverityPolicy()
        self.clock = clock

    async def process(self, tx: Tx, lines: Sequence[CostLine]) -> list[Outcome]:
        lines = list(
            {ln.record_id: ln for ln in lines}.values()
        )  # a record twice in a batch counts once
        monitors = {m.name: m for m in self._monitors()}
        touched = affected_series(lines, list(monitors.values()))
        await tx.lock_series(list(touched))
        stored = await tx.store_lines(lines)
        out: list[Outcome] = []
        by_monitor: dict[str, list[SeriesKey]] = {}
        for key in sorted(touched, key=lambda k: (k.monitor, k.values, k.currency)):
            by_monitor.setdefault(key.monitor, []).append(key)
        for name, keys in by_monitor.items():
            monitor = monitors[name]
            deltas = {k: point_deltas(touched[k], stored.previous, stored.versions) for k in keys}
            await tx.update_points(monitor, keys, stored, deltas)  # of every value, tracked or not
            if monitor.top and monitor.dimensions:
                top = await tx.top_values(monitor, monitor.top)
                keys = [k for k in keys if (k.values, k.currency) in top]  # values it tracks
            for i in range(0, len(keys), self.series_chunk):
                part = keys[i : i + self.series_chunk]
                inputs = await tx.prefetch(
                    monitor,
                    part,
                    self.suppress_days,
                    max_days=self.max_days,
                    lateness=self.lateness,
                )
                states: list = []
                for key in part:
                    out += await self.evaluate(tx, monitor, key, touched[key], inputs[key], states)
                await tx.save_states(monitor, states)
                del inputs, states
        return out

    async def evaluate(
        self,
        tx: Tx,
        monitor: Monitor,
        key: SeriesKey,
        members: Sequence[CostLine],
        inputs: Prefetched,
        states: list,
    ) -> list[Outcome]:
        """Re-evaluate one series (its inputs prefetched) and record what changed."""
        points, high, first = inputs.points, inputs.high, inputs.first
        through = complete_through(high, self.lateness)
        if first is None or through is None or through < first:
            return []
        evaluated_from = max(first, through - timedelta(days=self.max_days))
        series = DailySeries.from_points(points, evaluated_from, through)
        monitor = taught(monitor, inputs.raised)  # feedback on this series' earlier anomalies
        fingerprint = f"{monitor.detector}:v{STATE_VERSION}:{sorted(monitor.params)!r}"
        resume = None
        if inputs.state is not None and inputs.state[:2] == (evaluated_from, fingerprint):
            resume = inputs.state[2]
        findings, state = evaluate_series(
            key, monitor, series, partial=_partial(points, high, through), resume=resume
        )
        if state is not None:
            states.append((key, evaluated_from, fingerprint, state))
        dimension = monitor.dimension_of(key.values)
        changes = reconcile(
            key,
            dimension,
            findings,
            inputs.raised,
            through=through,
            evaluated_from=evaluated_from,
            suppress_until=inputs.suppressed_until,
        )
        now = self.clock()
        out = []
        for change in changes:
            if change.finding is None:
                stored = await tx.anomaly_body(change.anomaly_id)
                if stored is None:
                    continue
                body, kind = stored
                anomaly = AnomalyV1.model_validate(
                    {**body, "status": "resolved", "detected_at": now}
                )
                cause = members[0] if members else None
            else:
                f = change.finding
                causes = await self._root_causes(tx, monitor, key, f)
                anomaly = self.build(
                    monitor, dimension, f, change.anomaly_id, change.status, causes, now
                )
                kind = f.kind
                cause = _cause(members, f)
            await tx.save_anomaly(monitor.name, key, anomaly.model_dump(mode="json"), kind, now)
            if kind == DATA_QUALITY:
                continue  # a billing delay is kept (its own kind) but is no cost anomaly to publish
            out.append(Outcome(anomaly, cause, change.kind))
        return out

    def build(
        self,
        monitor: Monitor,
        dimension: dict,
        f: Finding,
        aid: str,
        status: str,
        causes,
        now: datetime,
    ) -> AnomalyV1:
        return AnomalyV1(
            anomaly_id=aid,
            detected_at=now,
            window_start=_midnight(f.start),
            window_end=_midnight(f.end),
            dimension=dimension,
            expected_cost=f.expected,
            actual_cost=f.actual,
            impact=f.impact,
            impact_pct=f.impact_pct,
            currency=f.key.currency,
            severity=self.severity.of(f.impact, f.impact_pct),
            score=f.score,
            detector=f.detector,
            root_causes=[RootCauseV1(dimension=d, contribution=c) for d, c in causes],
            status=status,
            monitor=monitor.name,
        )

    async def _root_causes(self, tx: Tx, monitor: Monitor, key: SeriesKey, f: Finding):
        dims = [d for d in ROOT_CAUSE_DIMENSIONS if d not in monitor.dimensions]
        window = await tx.breakdown(monitor, key, dims, f.start, f.end)
        baseline = await tx.breakdown(monitor, key, dims, f.baseline_start, f.start)
        used = [i for i, d in enumerate(dims) if any(k[i][1] for k in (*window, *baseline))]
        if not used:
            return []
        window, baseline = _project(window, used), _project(baseline, used)
        return root_causes(f.impact, f.expected, window, baseline)


def _partial(points: dict, high: datetime | None, through: date) -> tuple[Decimal, float] | None:
    """Cost so far and covered share of the day after `through`, when at least a quarter is in."""
    day = through + timedelta(days=1)
    if high is None or day not in points:
        return None
    share = (high - _midnight(day)).total_seconds() / 86400
    return (points[day], share) if 0.25 <= share < 1 else None


def _project(totals: dict, used: list[int]) -> dict:
    out: dict = {}
    for k, v in totals.items():
        sub = tuple(k[i] for i in used)
        out[sub] = out.get(sub, 0) + v
    return out


def _cause(members: Sequence[CostLine], f: Finding) -> CostLine | None:
    inside = [ln for ln in members if f.start <= ln.day < f.end]
    pool = inside or list(members)
    return max(pool, key=lambda ln: ln.cost) if pool else None
