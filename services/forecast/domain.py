"""Pure forecasting domain: cost lines, daily series per dimension, what changed, projections.

No I/O here. The model engine (`engine.py`) works on floats; everything that leaves the
service is converted back to Decimal money by `to_money`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

#: group keys, in the same vocabulary as `finfocus cost actual --group-by`
BASE_KEYS = ("provider", "account", "service", "region", "resource", "type")

#: dimension sets forecast for every account (plus one per tag key, see `dimension_sets`)
DEFAULT_DIMENSION_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("provider",),
    ("account",),
    ("service",),
    ("provider", "account", "service"),
    ("account", "service"),
    ("region",),
    ("resource",),
    ("type",),
)

#: the finest set of the provider/account/service hierarchy: every coarser set of it
#: (total, provider, account, service, account x service) is reconciled bottom-up from it
HIERARCHY_BASE = ("account", "provider", "service")

MONEY_QUANTUM = Decimal("0.0001")
RECURRING = "recurring"
USAGE = "usage"


@dataclass(frozen=True)
class CostLine:
    """One priced record as the forecast service keeps it (one day, one cost)."""

    record_id: str
    provider: str
    account: str
    service: str
    currency: str
    day: date
    cost: Decimal | None  # None: no price was found; the row carries no cost
    region: str | None = None
    resource: str | None = None
    type: str | None = None
    charge_frequency: str | None = None
    billing_scope: str | None = None
    scope_version: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


def is_recurring(charge_frequency: str | None) -> bool:
    """FOCUS `ChargeFrequency = Recurring`: forecast from its schedule, not smoothed."""
    return (charge_frequency or "").strip().lower() == "recurring"


def dimension_sets(tag_keys: list[str]) -> list[tuple[str, ...]]:
    """Every dimension set forecast: the defaults and one `tag:KEY` set per tag key."""
    return [*DEFAULT_DIMENSION_SETS, *((f"tag:{k}",) for k in sorted(tag_keys))]


def dims_id(dims: tuple[str, ...] | list[str]) -> str:
    """Canonical name of a dimension set, independent of order (`account,service`)."""
    return ",".join(sorted(dims))


def select_tag_keys(seen: list[str], setting: str, cap: int) -> list[str]:
    """Tag keys to forecast: every key seen (`*`, capped), none (''), or the listed ones."""
    setting = setting.strip()
    if setting == "*":
        return sorted(seen)[:cap]
    return sorted({k.strip() for k in setting.split(",") if k.strip()})


@dataclass(frozen=True)
class SeriesKey:
    """Identity of one forecast series: a dimension set, the group's values, a currency."""

    dims: str
    group: tuple[tuple[str, str | None], ...]
    currency: str

    def as_text(self) -> str:
        body = ";".join(f"{k}={'' if v is None else v}" for k, v in self.group)
        return f"{self.dims}|{body}|{self.currency}"

    def group_dict(self) -> dict[str, str | None]:
        return dict(self.group)


@dataclass
class DailySeries:
    """Daily cost of one group from `start` to `end` (inclusive), zero-filled.

    `usage` is every cost except recurring charges; `recurring` keeps those charges by day so
    they are forecast from their schedule.
    """

    key: SeriesKey
    start: date
    end: date
    usage: list[float]
    recurring: dict[date, Decimal] = field(default_factory=dict)
    actual: dict[date, Decimal] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.usage)

    def fingerprint(self) -> str:
        """Changes exactly when the data a fit sees changes (refit only what changed)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{self.key.as_text()}|{self.start}|{self.end}".encode())
        for d in sorted(self.actual):
            h.update(f"{d}:{self.actual[d]};".encode())
        for d in sorted(self.recurring):
            h.update(f"r{d}:{self.recurring[d]};".encode())
        self.__dict__["_fingerprint"] = digest = h.hexdigest()
        return digest


@dataclass(frozen=True)
class DayCost:
    """Aggregated cost of one group on one day, split by kind (usage or recurring)."""

    key: SeriesKey
    day: date
    kind: str
    cost: Decimal


def build_series(rows: list[DayCost], end: date) -> list[DailySeries]:
    """Zero-filled daily series per key, from each key's first day to `end` (trained_through)."""
    by_key: dict[SeriesKey, list[DayCost]] = {}
    for row in rows:
        if row.day <= end:
            by_key.setdefault(row.key, []).append(row)
    out: list[DailySeries] = []
    for key, items in by_key.items():
        start = min(r.day for r in items)
        n = (end - start).days + 1
        usage = [0.0] * n
        recurring: dict[date, Decimal] = {}
        actual: dict[date, Decimal] = {}
        for r in items:
            actual[r.day] = actual.get(r.day, Decimal(0)) + r.cost
            if r.kind == RECURRING:
                recurring[r.day] = recurring.get(r.day, Decimal(0)) + r.cost
            else:
                usage[(r.day - start).days] += float(r.cost)
        out.append(DailySeries(key, start, end, usage, recurring, actual))
    out.sort(key=lambda s: s.key.as_text())
    return out


def trained_through(last_day_with_data: date | None, today: date) -> date | None:
    """The last complete day: the latest day with data, but never today or later."""
    if last_day_with_data is None:
        return None
    return min(last_day_with_data, today - timedelta(days=1))


# --- forecasts ------------------------------------------------------------------------


@dataclass
class ForecastPoint:
    """One forecast day: mean and the 80 % and 95 % intervals (money)."""

    day: date
    mean: Decimal
    lo_80: Decimal
    hi_80: Decimal
    lo_95: Decimal
    hi_95: Decimal


@dataclass
class SeriesForecast:
    """A fitted forecast of one series, as stored."""

    key: SeriesKey
    model: str
    trained_through: date
    cv_error: Decimal | None
    fingerprint: str
    points: list[ForecastPoint]
    choice: Choice | None = None


_ZERO = Decimal("0.0000")


def to_money(value: float) -> Decimal:
    """A model's float as money, rounded to 1/100 of a cent (no negative zero)."""
    if not math.isfinite(value) or -0.00005 < value < 0.00005:
        return _ZERO
    return Decimal(f"{value:.4f}")


@dataclass(frozen=True)
class Choice:
    """A series' model as chosen by cross-validation, kept to skip re-selection for a while."""

    model: str
    cv_error: float
    widen_80: float = 1.0  # factor on the model's interval half-width, from its CV errors
    widen_95: float = 1.0


@dataclass
class RawForecast:
    """The engine's output for one series: floats per horizon day."""

    model: str
    cv_error: float | None
    mean: list[float]
    lo_80: list[float]
    hi_80: list[float]
    lo_95: list[float]
    hi_95: list[float]
    choice: Choice | None = None  # set when a cross-validated model produced it


def seasonal_naive(y: list[float], h: int, season: int = 7) -> RawForecast:
    """Repeat the last season; intervals from the spread of the seasonal differences.

    The fallback of every series too short for the model set, and the skeleton forecast.
    """
    n = len(y)
    if n == 0:
        zeros = [0.0] * h
        return RawForecast("SeasonalNaive", None, zeros, zeros, zeros, zeros, zeros)
    if n < season:
        level = sum(y) / n
        mean = [level] * h
        spread = [abs(v - level) for v in y]
        sigma = (sum(s * s for s in spread) / n) ** 0.5
        steps = [1.0] * h
        name = "Naive"
    else:
        mean = [y[n - season + (i % season)] for i in range(h)]
        diffs = [y[t] - y[t - season] for t in range(season, n)]
        sigma = (sum(d * d for d in diffs) / len(diffs)) ** 0.5 if diffs else 0.0
        steps = [math.sqrt(i // season + 1) for i in range(h)]
        name = "SeasonalNaive"
    nonneg = min(y) >= 0
    return _with_bands(name, None, mean, [sigma * s for s in steps], nonneg)


#: a deviation from the robust baseline counts as anomalous beyond this many robust sigmas
OUTLIER_SIGMAS = 5.0
#: ... and beyond this share of the baseline (smooth series have a tiny sigma)
OUTLIER_FLOOR = 0.10
#: a run of anomalous days of one sign this long is a level shift: the new level is kept
PERSIST_DAYS = 7
#: a run in the last week (only earlier days to compare with) continues a level shift when
#: the week before it already sat this many robust sigmas the same way (median deviation)
SHIFT_SIGMAS = 2.0
#: a cleaned series whose robust sigma exceeds this share of its level is "really volatile":
#: its 95 % band is legitimately wider than half to twice the point forecast
VOLATILE_CV = 0.25


@dataclass(frozen=True)
class Cleaned:
    """A history with its anomalous days replaced by their robust baseline."""

    values: list[float]
    flagged: list[bool]
    sigma: float  # robust sigma of the residuals around the baseline
    level: float  # median of the cleaned values

    @property
    def volatile(self) -> bool:
        return self.level > 0 and self.sigma > VOLATILE_CV * self.level


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    if n == 0:
        return 0.0
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def clean_history(y: list[float], season: int = 7, weeks: int = 3) -> Cleaned:
    """Replace one-off spikes and dips by what the same weekday looked like around them.

    Why: a three-day spike otherwise dominates a model's residuals, so its intervals (and the
    sums of them: provider, total, month-end, budgets) become useless. The baseline of a day
    is the median of the same weekday up to `weeks` weeks before it, and likewise after it,
    so weekly seasonality is kept and a lone spike cannot pull it. A day deviating from both
    baselines the same way by more than `OUTLIER_SIGMAS` robust sigmas (and `OUTLIER_FLOOR`
    of the baseline) is anomalous and replaced by the median of its neighbours; a day that
    agrees with one side is part of a level shift and stays, so the models take the new
    level. In the last week only the days before exist: a run deviating from them for
    `PERSIST_DAYS` days is a shift, a shorter one (a spike still going on) is cleaned until it
    has lasted a week, unless it continues a shift that began before it: the week before the
    run deviates from its own earlier weeks the same way by a median of `SHIFT_SIGMAS` robust
    sigmas (those days agreed with the days after them, so they were kept; cleaning the
    newest days of that shift pulled the forecast back towards the old level).
    """
    n = len(y)
    if n < 2 * season:
        level = _median(list(y))
        return Cleaned(list(y), [False] * n, 0.0, level)
    base, resid, sides, lead = [], [], [], []
    for t in range(n):
        before = [y[t - season * j] for j in range(1, weeks + 1) if t - season * j >= 0]
        after = [y[t + season * j] for j in range(1, weeks + 1) if t + season * j < n]
        base.append(_median(before + after))
        # deviation from each side's baseline: a level shift agrees with one side, a spike
        # with neither; the smaller deviation is the one that counts
        devs = [y[t] - _median(side) for side in (before, after) if side]
        sides.append(devs)
        resid.append(min(devs, key=abs))
        lead.append(y[t] - _median(before) if before else 0.0)  # deviation from the weeks before
    # the spread around the two-sided baseline (the smaller one-sided deviation would
    # understate it and flag ordinary noise)
    sigma = 1.4826 * _median([abs(v - b) for v, b in zip(y, base)])
    flagged = [
        all(d * r > 0 for d in devs)
        and abs(r) > OUTLIER_SIGMAS * sigma
        and abs(r) > OUTLIER_FLOOR * abs(b) + 1e-9
        for r, b, devs in zip(resid, base, sides)
    ]
    t = 0
    while t < n:  # long runs of one sign are level shifts, not anomalies
        if not flagged[t]:
            t += 1
            continue
        sign = resid[t] > 0
        end = t
        while end < n and flagged[end] and (resid[end] > 0) == sign:
            end += 1
        if end - t >= PERSIST_DAYS or (
            t >= n - season and _continues_shift(lead, t, sign, season, sigma)
        ):
            for i in range(t, end):
                flagged[i] = False
        t = end
    values = [b if f else v for v, b, f in zip(y, base, flagged)]
    kept = [r for r, f in zip(resid, flagged) if not f]
    sigma = 1.4826 * _median([abs(r) for r in kept]) if kept else 0.0
    return Cleaned(values, flagged, sigma, _median(values))


def _continues_shift(lead: list[float], start: int, up: bool, season: int, sigma: float) -> bool:
    """Whether the `season` days before `start` already sat above (`up`) or below the weeks
    before them by a median of `SHIFT_SIGMAS` robust sigmas: a level shift under way."""
    week = lead[max(0, start - season) : start]
    if len(week) < season or sigma <= 0:
        return False
    shift = _median(week)
    return (shift > 0) == up and abs(shift) >= SHIFT_SIGMAS * sigma


def _with_bands(
    model: str, cv_error: float | None, mean: list[float], sigma: list[float], nonneg: bool
) -> RawForecast:
    def lo(m: float, s: float, z: float) -> float:
        v = m - z * s
        return max(v, 0.0) if nonneg else v

    return RawForecast(
        model,
        cv_error,
        mean,
        [lo(m, s, 1.2816) for m, s in zip(mean, sigma)],
        [m + 1.2816 * s for m, s in zip(mean, sigma)],
        [lo(m, s, 1.96) for m, s in zip(mean, sigma)],
        [m + 1.96 * s for m, s in zip(mean, sigma)],
    )


def recurring_schedule(charges: dict[date, Decimal], end: date, h: int) -> dict[date, Decimal]:
    """Future recurring charges from their schedule: each charge day of the month seen in the
    last two months repeats monthly with its latest amount (a fee on the 1st stays on the 1st)."""
    if not charges:
        return {}
    recent_from = end - timedelta(days=62)
    latest: dict[int, tuple[date, Decimal]] = {}
    for d in sorted(charges):
        if d >= recent_from and charges[d] != 0:
            latest[d.day] = (d, charges[d])
    out: dict[date, Decimal] = {}
    for offset in range(1, h + 1):
        d = end + timedelta(days=offset)
        last_dom = _month_length(d)
        for dom, (_, amount) in latest.items():
            if d.day == min(dom, last_dom):
                out[d] = out.get(d, Decimal(0)) + amount
    return out


def _month_length(d: date) -> int:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return (nxt - date(d.year, d.month, 1)).days


def assemble(series: DailySeries, raw: RawForecast) -> SeriesForecast:
    """Usage forecast plus scheduled recurring charges, as money."""
    h = len(raw.mean)
    scheduled = recurring_schedule(series.recurring, series.end, h)
    points = []
    day = series.end
    step = timedelta(days=1)
    for m, l8, h8, l9, h9 in zip(raw.mean, raw.lo_80, raw.hi_80, raw.lo_95, raw.hi_95):
        day += step
        values = [to_money(m), to_money(l8), to_money(h8), to_money(l9), to_money(h9)]
        fee = scheduled.get(day)
        if fee is not None:
            values = [v + fee for v in values]
        points.append(ForecastPoint(day, *values))
    cv = None if raw.cv_error is None or not math.isfinite(raw.cv_error) else to_money(raw.cv_error)
    return SeriesForecast(
        series.key, raw.model, series.end, cv, series.fingerprint(), points, raw.choice
    )


# --- reconciliation ---------------------------------------------------------------------


def hierarchy_children(key: SeriesKey, base: list[SeriesKey]) -> list[SeriesKey] | None:
    """The base series an aggregate adds up, or None when `key` is not such an aggregate."""
    dims = [d for d in key.dims.split(",") if d]
    if key.dims == dims_id(HIERARCHY_BASE) or not set(dims) < set(HIERARCHY_BASE):
        return None
    want = key.group_dict()
    return [
        b
        for b in base
        if b.currency == key.currency and all(b.group_dict().get(k) == v for k, v in want.items())
    ]


def reconcile_bottom_up(
    keys: list[SeriesKey], raws: dict[str, RawForecast]
) -> dict[str, RawForecast]:
    """Aggregate means become the sum of their children's means (bottom-up reconciliation).

    Why: fitted apart, the total and the providers told different stories (a total of 5,076
    beside providers adding to 5,249). Each aggregate keeps the width of its own calibrated
    interval, moved to the reconciled mean: summing the children's bands would assume their
    errors independent (too narrow) or identical (too wide); the aggregate's own
    cross-validation measured its spread. Aggregates whose children are not all in `raws`
    keep their own forecast.
    """
    base = [k for k in keys if k.dims == dims_id(HIERARCHY_BASE)]
    out = dict(raws)
    for key in keys:
        children = hierarchy_children(key, base)
        own = raws.get(key.as_text())
        if not children or own is None or any(c.as_text() not in raws for c in children):
            continue
        h = min(len(own.mean), *(len(raws[c.as_text()].mean) for c in children))
        mean = [sum(raws[c.as_text()].mean[i] for c in children) for i in range(h)]
        floor = (
            0.0 if all(v >= 0 for c in children for v in raws[c.as_text()].lo_95[:h]) else -math.inf
        )
        shift = [mean[i] - own.mean[i] for i in range(h)]
        out[key.as_text()] = RawForecast(
            own.model,
            own.cv_error,
            mean,
            [max(own.lo_80[i] + shift[i], floor) for i in range(h)],
            [own.hi_80[i] + shift[i] for i in range(h)],
            [max(own.lo_95[i] + shift[i], floor) for i in range(h)],
            [own.hi_95[i] + shift[i] for i in range(h)],
            own.choice,
        )
    return out


# --- month-end projection ---------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """Spend of one period: actual to date plus the forecast remainder, with a 95 % interval."""

    period_start: date
    period_end: date  # exclusive
    actual_to_date: Decimal
    forecast_remainder: Decimal
    projected: Decimal
    lo_95: Decimal
    hi_95: Decimal


def month_bounds(day: date) -> tuple[date, date]:
    start = day.replace(day=1)
    return start, date(start.year + (start.month == 12), start.month % 12 + 1, 1)


def quarter_bounds(day: date) -> tuple[date, date]:
    first_month = 3 * ((day.month - 1) // 3) + 1
    start = date(day.year, first_month, 1)
    end_month = first_month + 3
    end = date(day.year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
    return start, end


def project_period(
    actual: dict[date, Decimal], forecast: SeriesForecast, period: tuple[date, date]
) -> Projection:
    """Actual spend in the period up to trained_through plus forecast days up to its end.

    The interval adds the daily half-widths (errors of one series move together far more
    often than they cancel), which errs on the wide side.
    """
    start, end = period
    through = forecast.trained_through
    to_date = sum((v for d, v in actual.items() if start <= d < end and d <= through), Decimal(0))
    remainder = lo = hi = Decimal(0)
    for p in forecast.points:
        if start <= p.day < end and p.day > through:
            remainder += p.mean
            lo += p.lo_95
            hi += p.hi_95
    return Projection(
        start, end, to_date, remainder, to_date + remainder, to_date + lo, to_date + hi
    )
