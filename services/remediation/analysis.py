"""Recommendations and realised savings, from billing data and utilisation. Pure: no I/O.

Rules (see docs/remediation.md):
- idle-address: an Elastic IP billed as an idle address -> release-address.
- idle-nat-gateway / idle-load-balancer: billed hours but under 1 GB a day processed -> notify.
- unattached-volume / orphan-snapshot: volumes or snapshots billed in an account and region where
  the export shows no compute during the look-back -> delete-volume (volumes) or notify.
- previous-generation: an instance type of an older family with a cheaper current-generation
  equivalent in the price catalog -> resize-instance.
- commitment: steady on-demand compute spend (at least 7 days, never under the floor of 10 a
  day) -> a savings plan covering the minimum daily spend.
- idle-instance (Trusted Advisor): daily CPU <= 10 % and network <= 5 MB on >= 4 of the last
  14 days -> stop-instance.
- rightsize-instance (Compute Optimizer style): the smallest size of the family on which the
  p99.5 CPU, scaled by the vCPU ratio, stays under 100 % with 20 % headroom -> resize-instance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import yaml

from services.remediation.actions import resource_kind
from services.remediation.domain import CENT, DAYS_PER_MONTH, monthly

LOOKBACK_DAYS = 14
SIZES = (
    "nano",
    "micro",
    "small",
    "medium",
    "large",
    "xlarge",
    "2xlarge",
    "4xlarge",
    "8xlarge",
    "12xlarge",
    "16xlarge",
    "24xlarge",
)
VCPUS = {
    "nano": 2,
    "micro": 2,
    "small": 2,
    "medium": 2,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "12xlarge": 48,
    "16xlarge": 64,
    "24xlarge": 96,
}
PACKAGED_CATALOG = Path(__file__).parent / "catalog.yaml"


@dataclass(frozen=True)
class Catalog:
    currency: str
    hours_per_month: Decimal
    commitment_discount: Decimal
    previous_generation: dict[str, str]
    hourly: dict[str, Decimal]

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        data = yaml.safe_load((path or PACKAGED_CATALOG).read_text())
        return cls(
            currency=data.get("currency", "USD"),
            hours_per_month=Decimal(str(data.get("hours_per_month", 730))),
            commitment_discount=Decimal(str(data.get("commitment_discount", "0.28"))),
            previous_generation=dict(data.get("previous_generation", {})),
            hourly={k: Decimal(str(v)) for k, v in (data.get("on_demand_hourly") or {}).items()},
        )


@dataclass
class ResourceUsage:
    """What the look-back's billing data says about one resource."""

    resource_id: str
    provider: str
    account_id: str | None
    region: str | None
    service_name: str
    resource_type: str | None
    currency: str
    text: str = ""  # SKU, descriptions and types, for pattern rules
    daily_cost: dict[date, Decimal] = field(default_factory=dict)
    quantities: dict[str, Decimal] = field(default_factory=dict)  # unit -> consumed quantity
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return resource_kind(self.resource_id, None)

    def average_daily(self) -> Decimal:
        return (
            sum(self.daily_cost.values(), Decimal(0)) / len(self.daily_cost)
            if self.daily_cost
            else Decimal(0)
        )


@dataclass(frozen=True)
class MetricDay:
    day: date
    cpu_avg_pct: Decimal | None
    cpu_p995_pct: Decimal | None
    cpu_max_pct: Decimal | None
    network_mb: Decimal | None


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    type: str
    resource: ResourceUsage
    action: str | None
    params: dict
    rationale: str
    evidence: dict
    estimated_monthly_savings: Decimal
    currency: str


def recommendation_id(rec_type: str, resource_id: str) -> str:
    return hashlib.sha256(f"{rec_type}|{resource_id}".encode()).hexdigest()[:24]


def _rec(
    rec_type, usage, action, params, rationale, evidence, saving, currency=None
) -> Recommendation:
    return Recommendation(
        recommendation_id(rec_type, usage.resource_id),
        rec_type,
        usage,
        action,
        params,
        rationale,
        evidence,
        saving.quantize(CENT),
        currency or usage.currency,
    )


def _gb_processed(usage: ResourceUsage) -> Decimal:
    return sum(
        (
            q
            for unit, q in usage.quantities.items()
            if unit.lower() in {"gb", "gigabytes", "gb-processed"}
        ),
        Decimal(0),
    )


def split_type(instance_type: str | None) -> tuple[str, str] | None:
    if not instance_type or "." not in instance_type:
        return None
    family, size = instance_type.split(".", 1)
    return (family, size) if size in SIZES else None


def billing_rules(usages: list[ResourceUsage], catalog: Catalog) -> list[Recommendation]:
    out: list[Recommendation] = []
    compute_places = {(u.account_id, u.region) for u in usages if u.kind == "instance"}
    for u in usages:
        avg = u.average_daily()
        if avg <= 0:
            continue
        days = len(u.daily_cost)
        text = u.text.lower()
        if "idleaddress" in text.replace(" ", "").replace("-", "") or "idle address" in text:
            out.append(
                _rec(
                    "idle-address",
                    u,
                    "release-address",
                    {},
                    f"Elastic IP {u.resource_id} billed only as an idle address for {days} days",
                    {"daily_cost": str(avg.quantize(CENT)), "days": days},
                    monthly(avg),
                )
            )
        elif "natgateway" in text.replace(" ", "").replace("-", ""):
            gb = _gb_processed(u)
            if gb / max(days, 1) < 1:
                out.append(
                    _rec(
                        "idle-nat-gateway",
                        u,
                        "notify",
                        {"channel": "log"},
                        f"NAT gateway {u.resource_id} billed {days} days of hours but processed {gb} GB",
                        {"gb_processed": str(gb), "days": days},
                        monthly(avg),
                    )
                )
        elif "loadbalancer" in text.replace(" ", "").replace(
            "-", ""
        ) or "loadbalancing" in text.replace(" ", ""):
            gb = _gb_processed(u)
            if gb / max(days, 1) < 1:
                out.append(
                    _rec(
                        "idle-load-balancer",
                        u,
                        "notify",
                        {"channel": "log"},
                        f"load balancer {u.resource_id} billed {days} days but processed {gb} GB",
                        {"gb_processed": str(gb), "days": days},
                        monthly(avg),
                    )
                )
        elif u.kind in {"volume", "snapshot"} and (u.account_id, u.region) not in compute_places:
            if u.kind == "volume":
                out.append(
                    _rec(
                        "unattached-volume",
                        u,
                        "delete-volume",
                        {"snapshot": True},
                        f"volume {u.resource_id} bills in {u.account_id}/{u.region} where no compute runs",
                        {"days": days},
                        monthly(avg),
                    )
                )
            else:
                out.append(
                    _rec(
                        "orphan-snapshot",
                        u,
                        "notify",
                        {"channel": "log"},
                        f"snapshot {u.resource_id} bills in {u.account_id}/{u.region} where no compute runs",
                        {"days": days},
                        monthly(avg),
                    )
                )
        if u.kind == "instance":
            parts = split_type(u.resource_type)
            if parts and parts[0] in catalog.previous_generation:
                new_type = f"{catalog.previous_generation[parts[0]]}.{parts[1]}"
                old_price, new_price = (
                    catalog.hourly.get(u.resource_type or ""),
                    catalog.hourly.get(new_type),
                )
                if old_price and new_price and new_price < old_price:
                    saving = monthly(avg) * (1 - new_price / old_price)
                    out.append(
                        _rec(
                            "previous-generation",
                            u,
                            "resize-instance",
                            {"instance_type": new_type},
                            f"{u.resource_type} is a previous generation; {new_type} costs "
                            f"{new_price}/h instead of {old_price}/h",
                            {
                                "from": u.resource_type,
                                "to": new_type,
                                "old_hourly": str(old_price),
                                "new_hourly": str(new_price),
                            },
                            saving,
                        )
                    )
    out.extend(commitment_rule(usages, catalog))
    return out


def commitment_rule(
    usages: list[ResourceUsage],
    catalog: Catalog,
    *,
    min_days: int = 7,
    floor: Decimal = Decimal("10"),
) -> list[Recommendation]:
    """Steady on-demand instance spend per (provider, account, currency) a savings plan would cover:
    committing to the lowest daily spend of the look-back keeps the plan fully used every day,
    whatever the variation above it."""
    groups: dict[tuple, dict[date, Decimal]] = {}
    for u in usages:
        if u.kind != "instance":
            continue
        daily = groups.setdefault((u.provider, u.account_id, u.currency), {})
        for d, c in u.daily_cost.items():
            daily[d] = daily.get(d, Decimal(0)) + c
    out = []
    for (provider, account, currency), daily in groups.items():
        if len(daily) < min_days:
            continue
        values = list(daily.values())
        low = min(values)
        mean = sum(values, Decimal(0)) / len(values)
        if low < floor or len(values) < min_days:
            continue
        hourly = (low / 24).quantize(Decimal("0.001"))
        target = ResourceUsage(
            f"{provider}:{account}:compute-commitment",
            provider,
            account,
            None,
            "compute",
            "commitment",
            currency,
        )
        out.append(
            _rec(
                "commitment",
                target,
                None,
                {},
                f"on-demand compute in {account} never fell under {low.quantize(CENT)} {currency}/day "
                f"for {len(values)} days: a savings plan of {hourly}/h covers it",
                {
                    "min_daily": str(low.quantize(CENT)),
                    "mean_daily": str(mean.quantize(CENT)),
                    "commit_hourly": str(hourly),
                    "discount": str(catalog.commitment_discount),
                },
                low * DAYS_PER_MONTH * catalog.commitment_discount,
            )
        )
    return out


def utilisation_rules(
    usages: list[ResourceUsage],
    metrics: dict[str, list[MetricDay]],
    catalog: Catalog,
    through: date,
) -> list[Recommendation]:
    out = []
    since = through - timedelta(days=LOOKBACK_DAYS - 1)
    for u in usages:
        if u.kind != "instance" or u.resource_id not in metrics:
            continue
        days = [m for m in metrics[u.resource_id] if since <= m.day <= through]
        if not days:
            continue
        idle = [
            m
            for m in days
            if m.cpu_avg_pct is not None
            and m.cpu_avg_pct <= 10
            and m.network_mb is not None
            and m.network_mb <= 5
        ]
        avg = u.average_daily()
        if len(idle) >= 4:
            out.append(
                _rec(
                    "idle-instance",
                    u,
                    "stop-instance",
                    {},
                    f"instance {u.resource_id} was idle (CPU <= 10 %, network <= 5 MB) on "
                    f"{len(idle)} of the last {len(days)} days",
                    {"idle_days": len(idle), "days": len(days)},
                    monthly(avg),
                )
            )
            continue
        measured = [m.cpu_p995_pct if m.cpu_p995_pct is not None else m.cpu_max_pct for m in days]
        peaks = [p for p in measured if p is not None]
        parts = split_type(u.resource_type)
        if not peaks or not parts or avg <= 0:
            continue
        family, size = parts
        p995 = max(peaks)
        best = size
        for candidate in reversed(SIZES[SIZES.index("large") : SIZES.index(size)]):
            projected = p995 * VCPUS[size] / VCPUS[candidate]
            if projected * Decimal("1.2") <= 100 and f"{family}.{candidate}" in catalog.hourly:
                best = candidate
            else:
                break
        if best == size:
            continue
        new_type = f"{family}.{best}"
        old_price, new_price = catalog.hourly.get(u.resource_type or ""), catalog.hourly[new_type]
        ratio = new_price / old_price if old_price else Decimal(VCPUS[best]) / Decimal(VCPUS[size])
        out.append(
            _rec(
                "rightsize-instance",
                u,
                "resize-instance",
                {"instance_type": new_type},
                f"p99.5 CPU of {u.resource_id} is {p995} % on {u.resource_type}; {new_type} keeps "
                f"20 % headroom",
                {"p995_cpu_pct": str(p995), "from": u.resource_type, "to": new_type},
                monthly(avg) * (1 - ratio),
            )
        )
    return out


@dataclass(frozen=True)
class Savings:
    baseline_daily: Decimal
    after_daily: Decimal | None
    days_before: int
    days_after: int
    realised_monthly: Decimal | None


def realised_savings(
    daily: dict[date, Decimal],
    executed_on: date,
    data_through: date | None,
    *,
    baseline_days: int = 7,
    max_after_days: int = 30,
) -> Savings | None:
    """Baseline = mean daily cost over the `baseline_days` before the action (days it billed);
    after = mean over complete days after the action day up to the last day of billing data,
    a day without any billing counting as zero (a stopped instance bills nothing)."""
    before = [
        c
        for d, c in daily.items()
        if executed_on - timedelta(days=baseline_days) <= d < executed_on
    ]
    if not before:
        return None
    baseline = sum(before, Decimal(0)) / len(before)
    after_days: list[Decimal] = []
    if data_through is not None:
        day = executed_on + timedelta(days=1)
        while day <= data_through and len(after_days) < max_after_days:
            after_days.append(daily.get(day, Decimal(0)))
            day += timedelta(days=1)
    if not after_days:
        return Savings(baseline, None, len(before), 0, None)
    after = sum(after_days, Decimal(0)) / len(after_days)
    return Savings(
        baseline,
        after,
        len(before),
        len(after_days),
        ((baseline - after) * DAYS_PER_MONTH).quantize(CENT),
    )
