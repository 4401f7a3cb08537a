"""The demo's ranges are usable: issue 18's target, on the sample data through the pure pipeline.

Every series the service forecasts on the demo sample (every dimension set, tag keys included)
is fitted as a refit does (`fit_many`, then bottom-up reconciliation, then scheduled recurring
charges): each series' 30-day 95 % range lies within half to twice its point forecast unless
its cleaned history is volatile, and the month-end projection of the total is close to the
month before with a narrow range. The sample ends with the 3-day EC2 spike.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from finfocus.sample_data import generate
from services.forecast import engine
from services.forecast.domain import (
    RECURRING,
    USAGE,
    DayCost,
    SeriesKey,
    assemble,
    build_series,
    clean_history,
    dimension_sets,
    dims_id,
    month_bounds,
    project_period,
    reconcile_bottom_up,
)

COLUMN = {
    "provider": "ProviderName",
    "service": "ServiceName",
    "region": "RegionId",
    "resource": "ResourceId",
    "type": "ResourceType",
}


def _value(row: dict[str, str], dim: str) -> str | None:
    if dim == "account":
        return row["SubAccountId"] or row["BillingAccountId"]
    if dim.startswith("tag:"):
        return json.loads(row["Tags"] or "{}").get(dim[4:])
    return row[COLUMN[dim]] or None


def demo_series(end: date):
    rows, summary = generate(end=end)
    tag_keys = sorted({k for r in rows for k in json.loads(r["Tags"] or "{}")})
    costs = []
    for dims in dimension_sets(tag_keys):
        for r in rows:
            day = datetime.fromisoformat(r["ChargePeriodStart"].replace("Z", "+00:00")).date()
            key = SeriesKey(
                dims_id(dims), tuple(sorted((d, _value(r, d)) for d in dims)), r["BillingCurrency"]
            )
            kind = RECURRING if r["ChargeFrequency"] == "Recurring" else USAGE
            costs.append(DayCost(key, day, kind, Decimal(r["BilledCost"])))
    return build_series(costs, end - timedelta(days=1)), summary


@pytest.mark.parametrize("end", [date(2026, 12, 2), date(2026, 11, 20)])
def test_every_demo_series_range_is_within_half_to_twice_and_month_end_is_sane(end):
    series, summary = demo_series(end)
    assert summary.spike_days[-1] == end - timedelta(days=1)  # the spike is in the last days
    raws = engine.fit_many([(s.key.as_text(), s.usage) for s in series], 92)
    raws = reconcile_bottom_up([s.key for s in series], raws)
    outside = []
    for s in series:
        points = assemble(s, raws[s.key.as_text()]).points[:30]
        mean, lo, hi = (sum(getattr(p, a) for p in points) for a in ("mean", "lo_95", "hi_95"))
        if (
            mean > 0
            and not (lo >= mean / 2 and hi <= 2 * mean)
            and not clean_history(s.usage).volatile
        ):
            outside.append((s.key.as_text(), mean, lo, hi))
    assert len(series) > 100 and outside == []

    total = next(s for s in series if s.key.dims == "")
    through = total.end
    projection = project_period(
        total.actual,
        assemble(total, raws[total.key.as_text()]),
        month_bounds(through + timedelta(days=1)),
    )
    start, stop = month_bounds(through.replace(day=1) - timedelta(days=1))
    last_month = sum(v for d, v in total.actual.items() if start <= d < stop)
    assert Decimal("0.8") * last_month < projection.projected < Decimal("1.25") * last_month
    assert projection.hi_95 - projection.lo_95 < Decimal("0.1") * projection.projected
