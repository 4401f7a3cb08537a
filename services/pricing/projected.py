"""Projected monthly cost of a Pulumi plan (`pulumi preview --json`).

`plan_components` (pure) turns each step's old and new state into priced components
(an instance's hours, a volume's GB-months, ...); `price_plan` prices them through the same
chain as usage records (plugins, then specs, then an explicit "none") at 730 hours a month.
Resources that cannot be priced stay in the result with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.pricing import domain

HOURS_PER_MONTH = Decimal(730)
SKIPPED_OPS = {"read", "refresh", "discard", "remove-pending-replace"}

AWS, AZURE, GCP = "AWS", "Microsoft", "Google Cloud"


@dataclass(frozen=True)
class Component:
    """One priced quantity of a resource, per month."""

    provider: str
    service: str
    sku: str | None
    region: str | None
    quantity: Decimal
    unit: str
    label: str = ""


@dataclass
class Mapped:
    components: list[Component] = field(default_factory=list)
    reason: str | None = None  # why nothing could be priced (unknown type, usage-based...)


def _region_from_zone(zone: str | None) -> str | None:
    if not zone:
        return None
    if re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d[a-z]", zone):  # AWS us-east-1a
        return zone[:-1]
    if re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", zone):  # GCP us-central1-a
        return zone.rsplit("-", 1)[0]
    return zone


def _arn_region(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" and parts[3] else None


def _aws_region(props: dict, default: str | None) -> str | None:
    return (
        props.get("region")
        or _region_from_zone(props.get("availabilityZone"))
        or _arn_region(props.get("arn"))
        or default
    )


def _hours(provider, service, sku, region, label="") -> Component:
    return Component(provider, service, sku, region, HOURS_PER_MONTH, "Hrs", label)


def _dec(value: Any, default: str = "0") -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(default)
    except Exception:  # noqa: BLE001
        return Decimal(default)


def map_resource(rtype: str, props: dict, *, aws_region: str | None = None) -> Mapped:
    """The monthly components of one resource state (inputs merged over outputs)."""
    tags = props.get("tags") or {}
    if rtype == "aws:ec2/instance:Instance":
        if not props.get("instanceType"):
            return Mapped(reason="instanceType is unknown")
        region = _aws_region(props, aws_region)
        out = [_hours(AWS, "AmazonEC2", props["instanceType"], region, "instance hours")]
        root = props.get("rootBlockDevice") or {}
        if root.get("volumeSize"):
            out.append(Component(AWS, "AmazonEBS", root.get("volumeType") or "gp2", region, _dec(root["volumeSize"]), "GB-Mo", "root volume"))
        return Mapped(out)
    if rtype == "aws:ebs/volume:Volume":
        region = _aws_region(props, aws_region)
        return Mapped([Component(AWS, "AmazonEBS", props.get("type") or "gp2", region, _dec(props.get("size")), "GB-Mo", "volume storage")])
    if rtype == "aws:rds/instance:Instance":
        cls = props.get("instanceClass")
        if not cls:
            return Mapped(reason="instanceClass is unknown")
        engine = (props.get("engine") or "mysql").lower()
        engine = "postgresql" if engine.startswith("postgres") else engine
        region = _aws_region(props, aws_region)
        if props.get("multiAz"):
            return Mapped(reason="Multi-AZ RDS is not in the price data")
        out = [_hours(AWS, "AmazonRDS", f"{cls}:{engine}", region, f"{engine} instance hours")]
        if props.get("allocatedStorage"):
            out.append(Component(AWS, "AmazonRDS", f"storage:{props.get('storageType') or 'gp2'}", region,
                                 _dec(props["allocatedStorage"]), "GB-Mo", "database storage"))
        return Mapped(out)
    if rtype in {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2", "aws:s3/bucketV2:Bucket"}:
        gb = tags.get("finfocus:storage-gb")
        if gb is None:
            return Mapped(reason="usage-based (storage): tag the bucket finfocus:storage-gb to estimate it")
        return Mapped([Component(AWS, "AmazonS3", "standard", _aws_region(props, aws_region), _dec(gb), "GB-Mo", "standard storage")])
    if rtype in {"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"}:
        kind = props.get("loadBalancerType") or "application"
        return Mapped([_hours(AWS, "AWSELB", kind, _aws_region(props, aws_region), f"{kind} load balancer hours")])
    if rtype == "aws:ec2/natGateway:NatGateway":
        return Mapped([_hours(AWS, "AmazonVPC", "natgateway", _aws_region(props, aws_region), "NAT gateway hours")])
    # Azure
    if rtype in {"azure-native:compute:VirtualMachine", "azure-native:compute/v20230301:VirtualMachine"}:
        size = (props.get("hardwareProfile") or {}).get("vmSize")
        if not size:
            return Mapped(reason="hardwareProfile.vmSize is unknown")
        return Mapped([_hours(AZURE, "Virtual Machines", size, props.get("location"), "VM hours")])
    if rtype in {"azure:compute/linuxVirtualMachine:LinuxVirtualMachine", "azure:compute/windowsVirtualMachine:WindowsVirtualMachine"}:
        if not props.get("size"):
            return Mapped(reason="size is unknown")
        return Mapped([_hours(AZURE, "Virtual Machines", props["size"], props.get("location"), "VM hours")])
    if rtype == "azure-native:compute:Disk":
        sku = (props.get("sku") or {}).get("name") or "Standard_LRS"
        return Mapped([Component(AZURE, "Storage", sku, props.get("location"), _dec(props.get("diskSizeGB")), "GB-Mo", "managed disk")])
    # GCP
    if rtype == "gcp:compute/instance:Instance":
        if not props.get("machineType"):
            return Mapped(reason="machineType is unknown")
        return Mapped([_hours(GCP, "Compute Engine", props["machineType"], _region_from_zone(props.get("zone")), "instance hours")])
    if rtype == "gcp:compute/disk:Disk":
        return Mapped([Component(GCP, "Compute Engine", props.get("type") or "pd-standard", _region_from_zone(props.get("zone")),
                                 _dec(props.get("size"), "10"), "GB-Mo", "persistent disk")])
    if rtype == "gcp:storage/bucket:Bucket":
        labels = props.get("labels") or {}
        gb = labels.get("finfocus-storage-gb")
        if gb is None:
            return Mapped(reason="usage-based (storage): label the bucket finfocus-storage-gb to estimate it")
        return Mapped([Component(GCP, "Cloud Storage", (props.get("storageClass") or "STANDARD").lower(),
                                 (props.get("location") or "").lower() or None, _dec(gb), "GB-Mo", "storage")])
    return Mapped(reason=f"no cost mapping for {rtype} (free, or not supported yet)")


def provider_of(rtype: str) -> str:
    prefix = rtype.split(":", 1)[0]
    return {"aws": AWS, "azure": AZURE, "azure-native": AZURE, "gcp": GCP, "google-native": GCP}.get(prefix, prefix)


@dataclass
class PlanResource:
    urn: str
    name: str
    type: str
    op: str
    provider: str
    before: Mapped | None
    after: Mapped | None


def _props(state: dict | None) -> dict | None:
    if not state:
        return None
    return {**(state.get("outputs") or {}), **(state.get("inputs") or {})}


def _is_custom(step: dict, state: dict | None, rtype: str) -> bool:
    if rtype.startswith("pulumi:providers:") or rtype == "pulumi:pulumi:Stack":
        return False
    if state is not None and "custom" in state:
        return bool(state["custom"])
    return "/" in rtype.split(":")[1] if rtype.count(":") >= 2 else False


def plan_resources(plan: dict, *, aws_region: str | None = None) -> list[PlanResource]:
    """The plan's custom resources, with the components before and after the change."""
    if not isinstance(plan, dict) or not isinstance(plan.get("steps"), list):
        raise ValueError("not a `pulumi preview --json` document: no steps[]")
    out: list[PlanResource] = []
    seen: dict[str, int] = {}
    # a replacement shows as replace + create-replacement + delete-replaced: one resource
    replaced = {s.get("urn") for s in plan["steps"] if s.get("op") == "replace"}
    for step in plan["steps"]:
        op = step.get("op", "")
        if op in SKIPPED_OPS or (op in {"create-replacement", "delete-replaced"} and step.get("urn") in replaced):
            continue
        old, new = step.get("oldState"), step.get("newState")
        state = new or old or {}
        urn = step.get("urn") or state.get("urn") or ""
        rtype = state.get("type") or (urn.split("::")[-2] if urn.count("::") >= 3 else "")
        if not _is_custom(step, state, rtype):
            continue
        old_props = _props(old) if op not in {"create", "create-replacement"} else None
        new_props = _props(new) if op not in {"delete", "delete-replaced"} else None
        before = map_resource(rtype, old_props, aws_region=aws_region) if old_props is not None else None
        after = map_resource(rtype, new_props, aws_region=aws_region) if new_props is not None else None
        if op in {"create-replacement", "delete-replaced"}:
            before = before if op == "delete-replaced" else None
            after = after if op == "create-replacement" else None
        if op in {"create-replacement", "delete-replaced"} and urn in seen:
            merged = out[seen[urn]]
            if op == "create-replacement":
                merged.after = after
            else:
                merged.before = before
            merged.op = "replace"
            continue
        seen[urn] = len(out)
        out.append(PlanResource(urn, urn.rsplit("::", 1)[-1], rtype, op, provider_of(rtype), before, after))
    return out


QuoteFn = Callable[[Sequence[domain.UsageLine]], Awaitable[list[list[domain.Quote | None]]]]


@dataclass
class PricedComponent:
    component: Component
    decision: domain.PriceDecision


def _line(c: Component, currency: str) -> domain.UsageLine:
    return domain.UsageLine(provider=c.provider, service=c.service, currency=currency, quantity=c.quantity,
                            unit=c.unit, sku=c.sku, region=c.region)


async def price_components(components: Sequence[Component], currency: str, specs: domain.SpecBook,
                           quotes: QuoteFn | None) -> list[PricedComponent]:
    lines = [_line(c, currency) for c in components]
    answers = await quotes(lines) if quotes and lines else [[] for _ in lines]
    return [PricedComponent(c, domain.decide(line, q, specs)) for c, line, q in zip(components, lines, answers, strict=True)]


def _side(mapped: Mapped | None, priced: dict[Component, PricedComponent]) -> tuple[Decimal | None, list[PricedComponent], str | None]:
    """(monthly cost or None when unpriced, components, reason)."""
    if mapped is None:
        return Decimal(0), [], None
    if not mapped.components:
        return None, [], mapped.reason
    parts = [priced[c] for c in mapped.components]
    missing = [p for p in parts if p.decision.source == domain.NONE]
    if missing:
        return None, parts, "; ".join(
            f"{p.component.label} ({p.component.sku or '?'} in {p.component.region or 'any region'}): {p.decision.reason}"
            for p in missing
        )
    # every part left is priced (source is not `none`), so each has a billed cost
    return sum((p.decision.billed_cost for p in parts if p.decision.billed_cost is not None), Decimal(0)), parts, None


def _source(parts: list[PricedComponent]) -> str:
    sources = sorted({p.decision.source for p in parts})
    return ",".join(sources) if sources else domain.NONE


def money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


async def price_plan(plan: dict, *, specs: domain.SpecBook, quotes: QuoteFn | None, currency: str = "USD",
                     aws_region: str | None = None) -> dict:
    """The projected-cost document: `{"summary": {...}, "resources": [...]}`."""
    config = plan.get("config") if isinstance(plan, dict) else None
    aws_region = aws_region or (config or {}).get("aws:region")
    resources = plan_resources(plan, aws_region=aws_region)
    unique: dict[Component, None] = {}
    for r in resources:
        for m in (r.before, r.after):
            for c in (m.components if m else []):
                unique.setdefault(c)
    priced_list = await price_components(list(unique), currency, specs, quotes)
    priced = {p.component: p for p in priced_list}

    rows: list[dict] = []
    total = before_total = Decimal(0)
    by_provider: dict[str, Decimal] = {}
    by_service: dict[str, Decimal] = {}
    unpriced = 0
    for r in resources:
        after_cost, after_parts, after_reason = _side(r.after, priced)
        before_cost, before_parts, before_reason = _side(r.before, priced)
        parts = after_parts or before_parts
        reason = after_reason or before_reason
        priced_ok = reason is None
        if not priced_ok:
            unpriced += 1
        first = parts[0].component if parts else None
        row: dict[str, Any] = {
            "urn": r.urn, "name": r.name, "type": r.type, "op": r.op, "provider": r.provider,
            "service": first.service if first else None,
            "sku": first.sku if first else None,
            "region": first.region if first else None,
            "monthly": money(after_cost) if r.after is not None else "0",
            "before": money(before_cost) if r.before is not None else "0",
            "delta": money(after_cost - before_cost) if priced_ok and after_cost is not None and before_cost is not None else None,
            "currency": currency,
            "priceSource": _source(parts) if priced_ok else domain.NONE,
            "components": [
                {"label": p.component.label, "service": p.component.service, "sku": p.component.sku,
                 "region": p.component.region, "quantity": money(p.component.quantity), "unit": p.component.unit,
                 "unitPrice": money(p.decision.unit_price), "monthly": money(p.decision.billed_cost),
                 "priceSource": p.decision.source}
                for p in parts
            ],
        }
        if reason:
            row["reason"] = reason
        rows.append(row)
        if after_cost is not None and priced_ok:
            total += after_cost
            by_provider[r.provider] = by_provider.get(r.provider, Decimal(0)) + after_cost
            if row["service"]:
                by_service[row["service"]] = by_service.get(row["service"], Decimal(0)) + after_cost
        if before_cost is not None and priced_ok:
            before_total += before_cost
    summary = {
        "totalMonthly": money(total),
        "currency": currency,
        "before": money(before_total),
        "delta": money(total - before_total),
        "byProvider": {k: money(v) for k, v in sorted(by_provider.items())},
        "byService": {k: money(v) for k, v in sorted(by_service.items())},
        "resources": len(rows),
        "unpriced": unpriced,
        "hoursPerMonth": int(HOURS_PER_MONTH),
    }
    return {"summary": summary, "resources": rows}
