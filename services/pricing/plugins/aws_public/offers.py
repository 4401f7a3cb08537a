"""Index of AWS Price List bulk offer files (`AmazonEC2.json`, `AmazonRDS.json`, ...).

Only public on-demand prices are indexed: Linux, shared tenancy, no pre-installed software
for EC2; Single-AZ for RDS; the first tier of tiered prices (S3). Keys are
(service, kind, region), the kind being what a plan or a usage line names: an instance type,
a volume type, `storage:gp3`, `standard`, `application`, `natgateway`, or the offer's own SKU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

DEFAULT_DIR = Path(__file__).parent / "offers"

SERVICE_ALIASES = {
    "amazonec2": "AmazonEC2",
    "amazon elastic compute cloud": "AmazonEC2",
    "ec2": "AmazonEC2",
    "amazonebs": "AmazonEBS",
    "amazon elastic block store": "AmazonEBS",
    "ebs": "AmazonEBS",
    "amazonrds": "AmazonRDS",
    "amazon relational database service": "AmazonRDS",
    "rds": "AmazonRDS",
    "amazons3": "AmazonS3",
    "amazon simple storage service": "AmazonS3",
    "s3": "AmazonS3",
    "awselb": "AWSELB",
    "elastic load balancing": "AWSELB",
    "elb": "AWSELB",
    "amazonvpc": "AmazonVPC",
    "amazon virtual private cloud": "AmazonVPC",
    "natgateway": "AmazonVPC",
}


@dataclass(frozen=True)
class OfferPrice:
    service: str
    kind: str
    region: str
    unit: str
    price: Decimal
    sku: str
    description: str
    effective_date: str


def canonical_service(name: str) -> str | None:
    return SERVICE_ALIASES.get((name or "").strip().lower())


def _first_dimension(term: dict) -> dict | None:
    dims = list(term.get("priceDimensions", {}).values())
    if not dims:
        return None
    dims.sort(key=lambda d: Decimal(d.get("beginRange") or "0"))
    return dims[0]


def _kinds(code: str, family: str, a: dict) -> list[tuple[str, str]] | None:  # noqa: C901 - AWS offer families: one branch per family the index keeps
    """(service, kind) keys of a product, or None when it is not a price we index."""
    if code == "AmazonEC2":
        if family == "Compute Instance":
            if (
                a.get("operatingSystem"),
                a.get("tenancy"),
                a.get("preInstalledSw"),
                a.get("capacitystatus", "Used"),
            ) != ("Linux", "Shared", "NA", "Used"):
                return None
            return [("AmazonEC2", a["instanceType"].lower())]
        if family == "Storage" and a.get("volumeApiName"):
            return [("AmazonEBS", a["volumeApiName"].lower())]
        if family == "NAT Gateway" and a.get("usagetype", "").endswith("NatGateway-Hours"):
            return [("AmazonVPC", "natgateway")]
        return None
    if code == "AmazonRDS":
        if a.get("deploymentOption") != "Single-AZ":
            return None
        if family == "Database Instance":
            engine = a.get("databaseEngine", "").lower()
            keys = [("AmazonRDS", f"{a['instanceType'].lower()}:{engine}")]
            if engine == "postgresql":
                keys.append(("AmazonRDS", f"{a['instanceType'].lower()}:postgres"))
            return keys
        if family == "Database Storage":
            api = (
                "gp3"
                if "GP3" in a.get("volumeType", "")
                else "gp2"
                if a.get("volumeType") == "General Purpose"
                else None
            )
            return [("AmazonRDS", f"storage:{api}")] if api else None
        return None
    if code == "AmazonS3":
        if family == "Storage" and a.get("volumeType") == "Standard":
            return [("AmazonS3", "standard")]
        return None
    if code == "AWSELB":
        kind = {"Load Balancer-Application": "application", "Load Balancer-Network": "network"}.get(
            family
        )
        if kind and a.get("usagetype", "").endswith("LoadBalancerUsage"):
            return [("AWSELB", kind)]
        if kind == "application" and a.get("usagetype", "").endswith("LCUUsage"):
            return [("AWSELB", "application-lcu")]
        return None
    return None


class OfferIndex:
    """Prices from every `*.json` offer file of a directory."""

    def __init__(self, prices: list[OfferPrice]) -> None:
        self.prices = prices
        self._by_key = {(p.service, p.kind, p.region): p for p in prices}
        self._by_sku = {p.sku: p for p in prices}

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> OfferIndex:
        prices: list[OfferPrice] = []
        for path in sorted(Path(directory).glob("*.json")):
            prices.extend(parse_offer(json.loads(path.read_text())))
        return cls(prices)

    def lookup(self, service: str, kind: str, region: str) -> OfferPrice | None:
        svc = canonical_service(service)
        key = (kind or "").strip().lower()
        if svc is None or not key:
            return self._by_sku.get(kind or "")
        found = self._by_key.get((svc, key, region))
        if found is None and svc == "AmazonRDS" and ":" not in key:
            found = self._by_key.get((svc, f"{key}:mysql", region))
        if found is None and svc == "AmazonEC2":  # EBS and NAT come in the EC2 offer
            found = self._by_key.get(("AmazonEBS", key, region)) or self._by_key.get(
                ("AmazonVPC", key, region)
            )
        return found or self._by_sku.get(kind)

    def all(self, service: str = "", region: str = "") -> list[OfferPrice]:
        svc = canonical_service(service) if service else None
        return [
            p
            for p in self.prices
            if (svc is None or p.service == svc) and (not region or p.region == region)
        ]


def parse_offer(offer: dict) -> list[OfferPrice]:
    """The on-demand prices of one offer file that the index keeps."""
    code = offer.get("offerCode", "")
    on_demand = offer.get("terms", {}).get("OnDemand", {})
    out: list[OfferPrice] = []
    for sku, product in offer.get("products", {}).items():
        attrs = product.get("attributes", {})
        kinds = _kinds(code, product.get("productFamily", ""), attrs)
        region = attrs.get("regionCode")
        if not kinds or not region or sku not in on_demand:
            continue
        for term in on_demand[sku].values():
            dim = _first_dimension(term)
            if dim is None or "USD" not in dim.get("pricePerUnit", {}):
                continue
            for service, kind in kinds:
                out.append(
                    OfferPrice(
                        service,
                        kind,
                        region,
                        dim.get("unit", ""),
                        Decimal(dim["pricePerUnit"]["USD"]).normalize(),
                        sku,
                        dim.get("description", ""),
                        term.get("effectiveDate", ""),
                    )
                )
            break
    return out
