"""Price sources: fetch public list prices and turn them into snapshot documents
(`services.pricing.snapshot`), one per cloud. `finfocus prices refresh aws|azure|gcp` runs them.

* AWS: the Price List bulk offer files, one per service and region,
  `GET {base}/offers/v1.0/aws/{service}/current/{region}/index.json` (no key).
* Azure: the Retail Prices API, `GET {base}/api/retail/prices?$filter=...`, following
  `NextPageLink` (no key).
* GCP: the Cloud Billing Catalog API, `GET {base}/v1/services/{id}/skus?key=KEY&currencyCode=USD`,
  following `nextPageToken`; the API key comes from the `gcp-billing-api-key` secret
  (`FINFOCUS_SECRET_GCP_BILLING_API_KEY`, or Vault).

The parsers (`aws_offer_rows`, `azure_item_row`, `gcp_sku_rows`) are pure; the fetchers take an
`httpx.Client`, so tests point them at a local HTTP stand-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

AWS_BASE = "https://pricing.us-east-1.amazonaws.com"
AZURE_BASE = "https://prices.azure.com"
GCP_BASE = "https://cloudbilling.googleapis.com"

AWS_SERVICES = ("AmazonEC2", "AmazonRDS", "AmazonS3", "AWSELB", "AWSLambda", "AmazonEKS")
AWS_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1")
AZURE_REGIONS = ("eastus", "eastus2", "westus2", "westeurope", "northeurope")
AZURE_SERVICES = (
    "Virtual Machines",
    "Storage",
    "Load Balancer",
    "Virtual Network",
    "Azure Kubernetes Service",
)
GCP_REGIONS = ("us-central1", "us-east1", "us-west1", "europe-west1", "europe-west4")
#: Cloud Billing service ids: Compute Engine, Cloud Storage, Kubernetes Engine, Cloud SQL
GCP_SERVICES = {
    "6F81-5844-456A": "Compute Engine",
    "95FF-2EF5-5EA1": "Cloud Storage",
    "CCD8-9BF1-090E": "Kubernetes Engine",
    "9662-B51E-5089": "Cloud SQL",
}
GCP_KEY_SECRET = "gcp-billing-api-key"

META = {
    "aws": {
        "provider": "AWS",
        "source": "AWS Price List bulk offer files (public on-demand list prices)",
        "sourceUrl": f"{AWS_BASE}/offers/v1.0/aws/index.json",
    },
    "azure": {
        "provider": "Microsoft",
        "source": "Azure Retail Prices API (pay-as-you-go list prices)",
        "sourceUrl": f"{AZURE_BASE}/api/retail/prices",
    },
    "gcp": {
        "provider": "Google Cloud",
        "source": "GCP Cloud Billing Catalog API (public list prices)",
        "sourceUrl": f"{GCP_BASE}/v1/services",
    },
}


class SourceError(RuntimeError):
    """A price source could not be read: the message says which request and why."""


def _row(
    service: str,
    sku: str,
    region: str,
    unit: str,
    price: Decimal,
    description: str,
    effective: str = "",
) -> dict:
    row = {
        "service": service,
        "sku": sku,
        "region": region,
        "unit": unit,
        "price": format(price.normalize(), "f"),
        "description": description,
    }
    if effective:
        row["effectiveFrom"] = effective[:10]
    return row


def snapshot_doc(cloud: str, rows: list[dict], effective: str | None = None) -> dict:
    """A snapshot document of `rows` (duplicates: the first wins)."""
    seen, unique = set(), []
    for r in rows:
        key = (r["service"], r["sku"], r["region"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    today = datetime.now(UTC).date().isoformat()
    return {
        "cloud": cloud,
        **META[cloud],
        "currency": "USD",
        "effectiveDate": effective or today,
        "prices": unique,
        "history": [],
    }


def _get(client, url: str, params: dict | None = None) -> dict:
    import httpx

    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise SourceError(f"GET {url}: {exc}") from None
    if response.status_code != 200:
        raise SourceError(f"GET {url}: HTTP {response.status_code} {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise SourceError(f"GET {url}: the answer is not JSON") from None


# ---------------------------------------------------------------- AWS
_RDS_STORAGE = {
    "General Purpose": "gp2",
    "General Purpose-GP3": "gp3",
    "Provisioned IOPS": "io1",
    "Magnetic": "standard",
}


def _aws_keys(code: str, family: str, a: dict) -> list[tuple[str, str]]:  # noqa: C901 - AWS offer families: one branch per family the snapshot keeps
    """(service, sku) keys of one offer product; [] when it is not a price the snapshot keeps."""
    usage = a.get("usagetype", "")
    if code == "AmazonEC2":
        if family == "Compute Instance":
            if (
                a.get("operatingSystem"),
                a.get("tenancy"),
                a.get("preInstalledSw"),
                a.get("capacitystatus", "Used"),
            ) == ("Linux", "Shared", "NA", "Used"):
                return [("AmazonEC2", a["instanceType"])]
            return []
        if family == "Storage" and a.get("volumeApiName"):
            return [("AmazonEBS", a["volumeApiName"])]
        if family == "System Operation" and a.get("volumeApiName") and "IOPS" in usage:
            return [("AmazonEBS", f"{a['volumeApiName']}-iops")]
        if family == "Provisioned Throughput" and a.get("volumeApiName"):
            return [("AmazonEBS", f"{a['volumeApiName']}-throughput")]
        if family == "NAT Gateway":
            if usage.endswith("NatGateway-Hours"):
                return [("AmazonVPC", "natgateway")]
            if usage.endswith("NatGateway-Bytes"):
                return [("AmazonVPC", "natgateway-bytes")]
        return []
    if code == "AmazonRDS":
        multi = {"Single-AZ": "", "Multi-AZ": ":multi-az"}.get(a.get("deploymentOption", ""))
        if multi is None:
            return []
        if family == "Database Instance" and a.get(
            "licenseModel", "No license required"
        ).lower() in {"no license required", "general public license"}:
            engine = a.get("databaseEngine", "").lower()
            if engine not in {"postgresql", "mysql", "mariadb"}:
                return []
            return [("AmazonRDS", f"{a['instanceType']}:{engine}{multi}")]
        if (
            family == "Database Storage"
            and a.get("volumeType") in _RDS_STORAGE
            and "Aurora" not in a.get("databaseEngine", "")
        ):
            return [("AmazonRDS", f"storage:{_RDS_STORAGE[a['volumeType']]}{multi}")]
        if family == "Provisioned IOPS" and "Aurora" not in a.get("databaseEngine", ""):
            kind = "gp3" if "GP3" in usage.upper() else "io1"
            return [("AmazonRDS", f"iops:{kind}{multi}")]
        return []
    if code == "AmazonS3":
        if family == "Storage" and a.get("volumeType") == "Standard":
            return [("AmazonS3", "standard")]
        if family == "Storage" and a.get("volumeType") == "Standard - Infrequent Access":
            return [("AmazonS3", "standard-ia")]
        if family == "API Request" and a.get("group") == "S3-API-Tier1":
            return [("AmazonS3", "requests:tier1")]
        if family == "API Request" and a.get("group") == "S3-API-Tier2":
            return [("AmazonS3", "requests:tier2")]
        return []
    if code == "AWSELB":
        elb = {
            "Load Balancer-Application": "application",
            "Load Balancer-Network": "network",
            "Load Balancer": "classic",
        }.get(family)
        if elb and usage.endswith("LoadBalancerUsage"):
            return [("AWSELB", elb)]
        if elb in {"application", "network"} and usage.endswith("LCUUsage"):
            return [("AWSELB", f"{elb}-lcu")]
        return []
    if code == "AWSLambda" and family == "Serverless":
        if usage.endswith("Request") and "Edge" not in usage:
            return [("AWSLambda", "requests")]
        if usage.endswith("Lambda-GB-Second"):
            return [("AWSLambda", "duration")]
        if usage.endswith("Lambda-GB-Second-ARM"):
            return [("AWSLambda", "duration-arm")]
        return []
    if code == "AmazonEKS" and family == "Compute" and usage.endswith("AmazonEKS-Hours:perCluster"):
        return [("AmazonEKS", "cluster")]
    return []


def aws_offer_rows(offer: dict) -> list[dict]:
    """Snapshot rows of one bulk offer file (on-demand, first price tier)."""
    code = offer.get("offerCode", "")
    on_demand = (offer.get("terms") or {}).get("OnDemand") or {}
    out = []
    for sku, product in (offer.get("products") or {}).items():
        attrs = product.get("attributes") or {}
        region = attrs.get("regionCode")
        keys = _aws_keys(code, product.get("productFamily", ""), attrs)
        if not keys or not region or sku not in on_demand:
            continue
        for term in on_demand[sku].values():
            dims = sorted(
                (term.get("priceDimensions") or {}).values(),
                key=lambda d: Decimal(d.get("beginRange") or "0"),
            )
            if not dims or "USD" not in dims[0].get("pricePerUnit", {}):
                continue
            dim = dims[0]
            price = Decimal(dim["pricePerUnit"]["USD"])
            if (
                price == 0 and len(dims) > 1
            ):  # a free tier first (Lambda, S3 requests): take the paid one
                dim = dims[1]
                price = Decimal(dim["pricePerUnit"]["USD"])
            for service, key in keys:
                out.append(
                    _row(
                        service,
                        key,
                        region,
                        dim.get("unit", ""),
                        price,
                        dim.get("description", ""),
                        term.get("effectiveDate", ""),
                    )
                )
            break
    return out


def fetch_aws(
    client,
    *,
    services: Iterable[str] = AWS_SERVICES,
    regions: Iterable[str] = AWS_REGIONS,
    base: str = AWS_BASE,
) -> dict:
    rows: list[dict] = []
    published = []
    for service in services:
        for region in regions:
            offer = _get(client, f"{base}/offers/v1.0/aws/{service}/current/{region}/index.json")
            if offer.get("offerCode") != service:
                raise SourceError(f"{service}/{region}: the answer is not the {service} offer file")
            published.append(offer.get("publicationDate") or "")
            rows.extend(aws_offer_rows(offer))
    return snapshot_doc("aws", rows, max(published)[:10] if any(published) else None)


def fetch_aws_query(
    pricing,
    *,
    services: Iterable[str] = AWS_SERVICES,
    regions: Iterable[str] = AWS_REGIONS,
    max_pages: int = 2000,
) -> dict:
    """The same prices through the Price List Query API (`pricing.get_products`, a boto3
    `pricing` client): products filtered by `regionCode`, paged with NextToken. Smaller answers
    than the bulk files, but it needs AWS credentials."""
    import json

    rows: list[dict] = []
    published = []
    for service in services:
        for region in regions:
            products: dict = {}
            terms: dict = {}
            token = None
            for _ in range(max_pages):
                kwargs = {
                    "ServiceCode": service,
                    "FormatVersion": "aws_v1",
                    "MaxResults": 100,
                    "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}],
                }
                if token:
                    kwargs["NextToken"] = token
                try:
                    page = pricing.get_products(**kwargs)
                except Exception as exc:  # noqa: BLE001 - botocore's errors: say which request failed
                    raise SourceError(
                        f"Price List Query API GetProducts {service} {region}: {exc}"
                    ) from None
                for item in page.get("PriceList") or []:
                    doc = json.loads(item) if isinstance(item, str) else item
                    product = doc.get("product") or {}
                    sku = product.get("sku")
                    if not sku:
                        continue
                    products[sku] = product
                    on_demand = (doc.get("terms") or {}).get("OnDemand")
                    if on_demand:
                        terms[sku] = on_demand
                    published.append(doc.get("publicationDate") or "")
                token = page.get("NextToken")
                if not token:
                    break
            else:
                raise SourceError(
                    f"Price List Query API {service} {region}: more than {max_pages} pages"
                )
            rows.extend(
                aws_offer_rows(
                    {"offerCode": service, "products": products, "terms": {"OnDemand": terms}}
                )
            )
    return snapshot_doc("aws", rows, max(published)[:10] if any(published) else None)


# ---------------------------------------------------------------- Azure
_DISK_KIND = {
    "Premium SSD Managed Disks": "Premium_LRS",
    "Standard SSD Managed Disks": "StandardSSD_LRS",
    "Standard HDD Managed Disks": "Standard_LRS",
}


def azure_item_row(item: dict) -> dict | None:
    """A snapshot row of one Retail Prices API item, or None when the snapshot does not keep it."""
    if item.get("type") != "Consumption" or item.get("currencyCode", "USD") != "USD":
        return None
    region, product, meter = (
        item.get("armRegionName") or "",
        item.get("productName") or "",
        item.get("meterName") or "",
    )
    sku_name, unit = item.get("skuName") or "", item.get("unitOfMeasure") or ""
    price = Decimal(str(item.get("retailPrice")))
    effective = item.get("effectiveStartDate") or ""
    service = item.get("serviceName")
    if Decimal(str(item.get("tierMinimumUnits") or 0)) != 0:
        return None
    if service == "Virtual Machines":
        if (
            "Windows" in product
            or "Spot" in sku_name
            or "Low Priority" in sku_name
            or unit != "1 Hour"
            or not item.get("armSkuName")
        ):
            return None
        return _row(
            "Virtual Machines",
            item["armSkuName"],
            region,
            "Hrs",
            price,
            f"{product} {meter}",
            effective,
        )
    if service == "Storage" and product in _DISK_KIND and unit == "1/Month":
        m = re.fullmatch(r"([PES]\d+) LRS", sku_name)
        if m and meter.endswith(("Disk", "Disks")):
            return _row(
                "Storage",
                f"{_DISK_KIND[product]}:{m.group(1)}",
                region,
                "Mo",
                price,
                f"{product} {meter}",
                effective,
            )
        return None
    if (
        service == "Storage"
        and product == "General Block Blob v2"
        and sku_name == "Hot LRS"
        and meter == "Hot LRS Data Stored"
    ):
        return _row(
            "Storage", "blob:hot-lrs", region, "GB-Mo", price, f"{product} {meter}", effective
        )
    if (
        service == "Load Balancer"
        and meter == "Standard Included LB Rules and Outbound Rules"
        and unit == "1 Hour"
    ):
        return _row("Load Balancer", "standard", region, "Hrs", price, meter, effective)
    if product == "NAT Gateway" and meter == "Standard Gateway" and unit == "1 Hour":
        return _row("NAT Gateway", "gateway", region, "Hrs", price, meter, effective)
    if product == "NAT Gateway" and meter == "Standard Data Processed":
        return _row("NAT Gateway", "data-processed", region, "GB", price, meter, effective)
    if (
        service == "Azure Kubernetes Service"
        and meter == "Standard Uptime SLA"
        and unit == "1 Hour"
    ):
        return _row("Azure Kubernetes Service", "standard", region, "Hrs", price, meter, effective)
    return None


def fetch_azure(
    client,
    *,
    regions: Iterable[str] = AZURE_REGIONS,
    services: Iterable[str] = AZURE_SERVICES,
    base: str = AZURE_BASE,
    max_pages: int = 500,
) -> dict:
    rows: list[dict] = []
    for region in regions:
        for service in services:
            url: str | None = f"{base}/api/retail/prices"
            params: dict | None = {
                "api-version": "2023-01-01-preview",
                "currencyCode": "USD",
                "$filter": f"serviceName eq '{service}' and armRegionName eq '{region}' and priceType eq 'Consumption'",
            }
            pages = 0
            while url:
                page = _get(client, url, params)
                for item in page.get("Items") or []:
                    row = azure_item_row(item)
                    if row:
                        rows.append(row)
                url, params = page.get("NextPageLink"), None  # the next link carries the query
                pages += 1
                if pages >= max_pages:
                    raise SourceError(f"Azure {service} in {region}: more than {max_pages} pages")
    return snapshot_doc("azure", rows)


# ---------------------------------------------------------------- GCP
_GCP_DESCRIPTIONS = [
    (
        re.compile(r"^(E2|N2D|N2|C2|A2) Instance (Core|Ram) running in "),
        lambda m: f"{m.group(1).lower()}:{'core' if m.group(2) == 'Core' else 'ram'}",
    ),
    (
        re.compile(r"^N1 Predefined Instance (Core|Ram) running in "),
        lambda m: f"n1:{'core' if m.group(1) == 'Core' else 'ram'}",
    ),
    (
        re.compile(r"^Nvidia Tesla (A100|T4|V100) GPU running in "),
        lambda m: f"gpu:nvidia-tesla-{m.group(1).lower()}",
    ),
    (re.compile(r"^Storage PD Capacity"), lambda m: "pd-standard"),
    (re.compile(r"^SSD backed PD Capacity"), lambda m: "pd-ssd"),
    (re.compile(r"^Balanced PD Capacity"), lambda m: "pd-balanced"),
    (re.compile(r"^Standard Storage "), lambda m: "standard"),
    (re.compile(r"^Nearline Storage "), lambda m: "nearline"),
    (re.compile(r"^Coldline Storage "), lambda m: "coldline"),
    (re.compile(r"^Cloud NAT Gateway: Uptime"), lambda m: "nat-gateway"),
    (re.compile(r"^Networking Cloud NAT Data Processing"), lambda m: "nat-data"),
    (re.compile(r"^Network Load Balancing: Forwarding Rule Minimum"), lambda m: "forwarding-rule"),
    (re.compile(r"^Regional Kubernetes Clusters"), lambda m: "cluster"),
    (
        re.compile(r"^Cloud SQL for (?:PostgreSQL|MySQL): (Zonal|Regional) - (vCPU|RAM) in "),
        lambda m: (
            f"{'cpu' if m.group(2) == 'vCPU' else 'ram'}{':ha' if m.group(1) == 'Regional' else ''}"
        ),
    ),
    (
        re.compile(
            r"^Cloud SQL for (?:PostgreSQL|MySQL): (Zonal|Regional) - (Standard|Low cost) storage in "
        ),
        lambda m: (
            f"storage:{'ssd' if m.group(2) == 'Standard' else 'hdd'}{':ha' if m.group(1) == 'Regional' else ''}"
        ),
    ),
    (
        re.compile(r"^Cloud SQL for (?:PostgreSQL|MySQL): Zonal - (Micro|Small) instance in "),
        lambda m: "db-f1-micro" if m.group(1) == "Micro" else "db-g1-small",
    ),
]
#: SKUs the snapshot files under another service than the Cloud Billing service they come in
_GCP_SERVICE_OF = {
    "nat-gateway": "Networking",
    "nat-data": "Networking",
    "forwarding-rule": "Networking",
    "standard": "Cloud Storage",
    "nearline": "Cloud Storage",
    "coldline": "Cloud Storage",
    "cluster": "Kubernetes Engine",
}
_GCP_UNITS = {"h": "Hrs", "GiBy.h": "GiB-Hrs", "GiBy.mo": "GB-Mo", "GiBy": "GB"}


def _money(unit_price: dict) -> Decimal:
    return Decimal(str(unit_price.get("units") or 0)) + Decimal(
        int(unit_price.get("nanos") or 0)
    ) / Decimal(1_000_000_000)


def gcp_sku_rows(sku: dict, service: str, regions: Iterable[str]) -> list[dict]:
    """Snapshot rows of one Cloud Billing SKU (on-demand, first paid tier), one per region kept."""
    category = sku.get("category") or {}
    if category.get("usageType") != "OnDemand":
        return []
    desc = sku.get("description") or ""
    key = None
    for pattern, make in _GCP_DESCRIPTIONS:
        m = pattern.match(desc)
        if m:
            key = make(m)
            break
    if key is None or not sku.get("pricingInfo"):
        return []
    info = sku["pricingInfo"][0]
    expr = info.get("pricingExpression") or {}
    rates = sorted(
        expr.get("tieredRates") or [], key=lambda r: Decimal(str(r.get("startUsageAmount") or 0))
    )
    if not rates:
        return []
    price = _money(rates[0].get("unitPrice") or {})
    if price == 0 and len(rates) > 1:
        price = _money(rates[1].get("unitPrice") or {})
    unit = _GCP_UNITS.get(expr.get("usageUnit", ""), expr.get("usageUnit", ""))
    wanted = set(regions)
    served = [r for r in sku.get("serviceRegions") or [] if r in wanted or r == "us"]
    service = _GCP_SERVICE_OF.get(key, service)
    return [_row(service, key, r, unit, price, desc, info.get("effectiveTime", "")) for r in served]


def fetch_gcp(
    client,
    key: str,
    *,
    regions: Iterable[str] = GCP_REGIONS,
    services: dict[str, str] = GCP_SERVICES,
    base: str = GCP_BASE,
    max_pages: int = 200,
) -> dict:
    if not key:
        raise SourceError(
            f"no Cloud Billing API key: set the {GCP_KEY_SECRET} secret "
            "(FINFOCUS_SECRET_GCP_BILLING_API_KEY, or Vault)"
        )
    regions = list(regions)
    rows: list[dict] = []
    for service_id, service in services.items():
        token = ""
        for _ in range(max_pages):
            params = {
                "key": key,
                "currencyCode": "USD",
                "pageSize": "5000",
                **({"pageToken": token} if token else {}),
            }
            page = _get(client, f"{base}/v1/services/{service_id}/skus", params)
            for sku in page.get("skus") or []:
                rows.extend(gcp_sku_rows(sku, service, regions))
            token = page.get("nextPageToken") or ""
            if not token:
                break
        else:
            raise SourceError(f"GCP service {service_id}: more than {max_pages} pages")
    return snapshot_doc("gcp", rows)


# ---------------------------------------------------------------- refresh
def refresh(
    cloud: str, client, directory, *, secrets=None, now: datetime | None = None, **options
) -> dict:
    """Fetch `cloud`'s prices and write `directory/<cloud>.json`: the new prices, with the
    superseded ones (from the previous file there, else the bundled snapshot) kept in its
    history. Returns {"cloud", "file", "prices", "new", "changed", "unchanged", "withdrawn"}."""
    import json
    from pathlib import Path

    from services.pricing.snapshot import BUNDLED_DIR, merge

    if cloud == "aws" and options.pop("api", "bulk") == "query":
        fresh = fetch_aws_query(options.pop("pricing"), **options)
    elif cloud == "aws":
        fresh = fetch_aws(client, **options)
    elif cloud == "azure":
        fresh = fetch_azure(client, **options)
    elif cloud == "gcp":
        found = secrets.get(GCP_KEY_SECRET) if secrets is not None else None
        fresh = fetch_gcp(client, found.reveal() if found is not None else "", **options)
    else:
        raise SourceError(f"unknown price source {cloud!r}: aws, azure or gcp")
    if not fresh["prices"]:
        raise SourceError(
            f"{cloud}: the source answered but no price was recognised; nothing written"
        )
    target = Path(directory) / f"{cloud}.json"
    previous = target if target.is_file() else BUNDLED_DIR / f"{cloud}.json"
    old = json.loads(previous.read_text()) if previous.is_file() else None
    doc, counts = merge(old, fresh, now or datetime.now(UTC))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=0))
    tmp.replace(target)
    return {"cloud": cloud, "file": str(target), "prices": len(doc["prices"]), **counts}
