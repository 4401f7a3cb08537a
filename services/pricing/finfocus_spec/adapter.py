"""Translation between the plugin host's questions and the finfocus-spec `finfocus.v1`
CostSourceService messages (pure: builds and reads protobuf messages, no I/O).

What differs from this project's own protocol (`finfocus.plugin.v1`):

- the descriptor is `{provider, resource_type, sku, region, tags}` with a lower-case provider
  (`aws`, `azure`, `gcp`, `kubernetes`, `custom`) and a resource type that is REQUIRED: the
  Pulumi type token of the component's resource (`aws:ec2/instance:Instance`), as the
  finfocus-spec core sends it;
- money and quantities are doubles: read through their shortest decimal representation
  (`repr`), never through binary float arithmetic, and refused when negative, NaN or infinite;
- `GetPricingSpec` answers one spec with `rate_per_unit` in `unit` / `billing_mode`;
  `GetProjectedCost` answers `unit_price` and `cost_per_month` for one resource;
- `GetActualCost` takes `google.protobuf.Timestamp`s and answers cost points with a timestamp
  (and optionally a FOCUS record carrying the billing currency and the charge period).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

PROTOCOL = "finfocus.v1"
SERVICE = "finfocus.v1.CostSourceService"
HOURS_PER_MONTH = Decimal(730)


class SpecAnswerError(ValueError):
    """A finfocus.v1 plugin answered something that is not a usable price."""


_PROVIDERS = {
    "aws": "aws",
    "amazon web services": "aws",
    "microsoft": "azure",
    "azure": "azure",
    "azure-native": "azure",
    "google cloud": "gcp",
    "google": "gcp",
    "gcp": "gcp",
    "google-native": "gcp",
    "kubernetes": "kubernetes",
    "k8s": "kubernetes",
}


def provider_id(provider: str | None) -> str:
    """The spec's provider id for a FOCUS ProviderName; unknown ones are `custom`."""
    return _PROVIDERS.get((provider or "").strip().lower(), "custom")


def _kind(unit: str | None) -> str:
    from services.pricing.domain import _UNIT_OF

    return _UNIT_OF.get((unit or "").strip().lower(), (unit or "").strip().lower())


#: (provider id, service, unit kind) -> the Pulumi type token of the resource a component belongs to
_TYPES: dict[tuple[str, str, str], str] = {
    ("aws", "AmazonEC2", "hour"): "aws:ec2/instance:Instance",
    ("aws", "AmazonEBS", "gb-month"): "aws:ebs/volume:Volume",
    ("aws", "AmazonRDS", "hour"): "aws:rds/instance:Instance",
    ("aws", "AmazonRDS", "gb-month"): "aws:rds/instance:Instance",
    ("aws", "AmazonS3", "gb-month"): "aws:s3/bucket:Bucket",
    ("aws", "AWSELB", "hour"): "aws:lb/loadBalancer:LoadBalancer",
    ("aws", "AmazonVPC", "hour"): "aws:ec2/natGateway:NatGateway",
    ("azure", "Virtual Machines", "hour"): "azure-native:compute:VirtualMachine",
    ("azure", "Storage", "gb-month"): "azure-native:compute:Disk",
    ("gcp", "Compute Engine", "hour"): "gcp:compute/instance:Instance",
    ("gcp", "Compute Engine", "gb-month"): "gcp:compute/disk:Disk",
    ("gcp", "Cloud Storage", "gb-month"): "gcp:storage/bucket:Bucket",
    # other units of the same resources (provisioned IOPS, throughput)
    ("aws", "AmazonEBS", "*"): "aws:ebs/volume:Volume",
    ("aws", "AmazonRDS", "*"): "aws:rds/instance:Instance",
    ("azure", "Storage", "*"): "azure-native:compute:Disk",
}


def resource_type(
    provider: str | None, service: str | None, unit: str | None, given: str | None = None
) -> str:
    """The spec's REQUIRED resource type: the given one when it is a type token, else the
    Pulumi type of the resource the (service, unit) component belongs to, else `provider:service`."""
    if given and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_\-:/.]*", given) and ":" in given:
        return given
    pid = provider_id(provider)
    known = _TYPES.get((pid, service or "", _kind(unit))) or _TYPES.get((pid, service or "", "*"))
    if known:
        return known
    token = re.sub(r"[^a-zA-Z0-9_\-:/]", "", f"{pid}:{service or 'unknown'}")
    return token[:256]


def descriptor_fields(
    *, provider, service, sku, resource_type_: str | None, region, unit, attributes=None
) -> dict:
    """Keyword arguments of `finfocus.v1.ResourceDescriptor` for one question of the host.

    An RDS component's `class:engine[:multi-az]` SKU is split into the class (`sku`) and
    `engine` (and `multiAz`) tags, its `storage:TYPE` / `iops:TYPE` into `storageType` and
    `finfocus.component` tags; the FOCUS service and the unit asked
    for travel as tags too (`finfocus.service`, `finfocus.unit`)."""
    sku = sku or ""
    tags = {str(k): str(v) for k, v in (attributes or {}).items()}
    if service == "AmazonRDS" and ":" in sku:
        head, *rest = sku.split(":")
        if "multi-az" in rest:
            rest.remove("multi-az")
            tags.setdefault("multiAz", "true")
        if head in {"storage", "iops"}:
            tags.setdefault("storageType", rest[0] if rest else "")
            tags.setdefault("finfocus.component", head)
            sku = ""
        else:
            sku = head
            if rest:
                tags.setdefault("engine", rest[0])
    if service:
        tags.setdefault("finfocus.service", service)
    if unit:
        tags.setdefault("finfocus.unit", unit)
    return {
        "provider": provider_id(provider),
        "resource_type": resource_type(provider, service, unit, resource_type_),
        "sku": sku,
        "region": region or "",
        "tags": tags,
    }


def money(value: float, what: str) -> Decimal:
    """A wire double as an exact decimal of its shortest representation."""
    if not isinstance(value, float | int) or math.isnan(value) or math.isinf(value):
        raise SpecAnswerError(f"{what} {value!r} is not a finite number")
    if value < 0:
        raise SpecAnswerError(f"{what} {value!r} is negative")
    return Decimal(repr(float(value))).normalize() if value else Decimal(0)


#: billing modes of the spec's PricingSpec and the unit their rate is in
_BILLING_UNITS = {
    "per_hour": "hour",
    "per_cpu_hour": "hour",
    "per_gb_month": "GB-month",
    "per_request": "request",
    "per_gb": "GB",
    "per_day": "day",
    "flat": "month",
}


def spec_unit(unit: str, billing_mode: str) -> str:
    """The unit a PricingSpec's rate is in: `unit`, else the one its billing mode implies."""
    if unit and unit.lower() != "unknown":
        return unit
    return _BILLING_UNITS.get((billing_mode or "").strip().lower(), "")


@dataclass(frozen=True)
class UnitPrice:
    price: Decimal
    currency: str
    unit: str | None
    detail: str = ""


def price_from_spec(spec, wanted_unit: str | None) -> UnitPrice | None:
    """A unit price from a `PricingSpec`, or None when it is empty or in another unit."""
    unit = spec_unit(spec.unit, spec.billing_mode)
    if not spec.billing_mode and not spec.unit and not spec.rate_per_unit:
        return None  # an empty spec: the plugin has no price
    rate = money(spec.rate_per_unit, "rate_per_unit")
    if spec.billing_mode.lower() == "tiered" or (
        wanted_unit and unit and _kind(unit) != _kind(wanted_unit)
    ):
        return None  # a tiered price or another unit: left to GetProjectedCost
    return UnitPrice(rate, spec.currency or "USD", unit or wanted_unit, spec.description)


def price_from_projected(answer, wanted_unit: str | None) -> UnitPrice | None:
    """A unit price from a `GetProjectedCostResponse`: `unit_price` (in the unit of the usage
    asked for), else `cost_per_month` / 730 for an hourly usage; None when both are zero."""
    unit_price = money(answer.unit_price, "unit_price")
    monthly = money(answer.cost_per_month, "cost_per_month")
    currency = answer.currency or "USD"
    if unit_price:
        return UnitPrice(unit_price, currency, wanted_unit, answer.billing_detail)
    if monthly and _kind(wanted_unit) == "hour":
        return UnitPrice(monthly / HOURS_PER_MONTH, currency, wanted_unit, answer.billing_detail)
    return None


def timestamp_of(text: str):
    """A `google.protobuf.Timestamp` for an RFC 3339 string (`Z` or an offset; naive = UTC)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def rfc3339(stamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ActualPoint:
    start: str
    end: str
    cost: Decimal
    currency: str
    usage_amount: Decimal | None
    usage_unit: str
    source: str
    labels: dict[str, str]


def actual_points(results, request_end: str) -> list[ActualPoint]:
    """`ActualCostResult`s as cost points over [start, end): a point ends where its FOCUS
    record's charge period ends, else where the next point starts, else at the request's end."""
    out: list[ActualPoint] = []
    results = list(results)
    for i, r in enumerate(results):
        focus = r.focus_record if r.HasField("focus_record") else None
        start = rfc3339(r.timestamp) if r.HasField("timestamp") else ""
        if focus is not None and focus.HasField("charge_period_start") and not start:
            start = rfc3339(focus.charge_period_start)
        if focus is not None and focus.HasField("charge_period_end"):
            end = rfc3339(focus.charge_period_end)
        elif i + 1 < len(results) and results[i + 1].HasField("timestamp"):
            end = rfc3339(results[i + 1].timestamp)
        else:
            end = request_end
        currency = (focus.billing_currency if focus is not None else "") or "USD"
        usage = money(r.usage_amount, "usage_amount") if r.usage_amount else None
        labels = dict(focus.tags) if focus is not None else {}
        out.append(
            ActualPoint(
                start, end, money(r.cost, "cost"), currency, usage, r.usage_unit, r.source, labels
            )
        )
    return out
