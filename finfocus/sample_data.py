"""A realistic multi-cloud FOCUS 1.2 sample for `finfocus demo`.

Daily rows for AWS, Azure and GCP over several accounts, services, regions and resources,
with tags, weekly seasonality (quieter weekends, CI and notebooks idle on Saturdays and
Sundays), a slight growth trend, a recurring monthly support fee, and a clear spike: one
EC2 instance resized to a much bigger type for the last days.

Every value is a function of (seed, resource, day) only, never of a running random
stream, so two runs over overlapping windows agree on the days they share; each row
carries a stable `x_RecordId`, so importing again never counts a row twice. Money is
`Decimal`, rounded to the cent per row, so the totals are exact.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

CENT = Decimal("0.01")
QTY = Decimal("0.001")

COLUMNS = [
    "ProviderName", "PublisherName", "InvoiceIssuerName",
    "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName",
    "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeFrequency", "ChargeDescription",
    "ServiceName", "ServiceCategory", "RegionId", "RegionName",
    "ResourceId", "ResourceName", "ResourceType", "SkuId", "PricingCategory",
    "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit",
    "ListUnitPrice", "ContractedUnitPrice",
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
    "Tags", "x_RecordId",
]  # fmt: skip


@dataclass(frozen=True)
class Account:
    provider: str
    publisher: str
    billing_account_id: str
    billing_account_name: str
    sub_account_id: str
    sub_account_name: str


@dataclass(frozen=True)
class Resource:
    """One billed resource: `quantity` units a day at `unit_price` (list price `list_price`)."""

    account: Account
    service: str
    category: str
    region_id: str
    region_name: str
    resource_id: str
    name: str
    type: str
    sku: str
    unit: str
    quantity: Decimal
    unit_price: Decimal
    list_price: Decimal | None = None
    weekend_factor: Decimal = Decimal("1")
    growth_per_day: Decimal = Decimal("0")
    noise: float = 0.04
    tags: dict[str, str] = field(default_factory=dict)


# fmt: off
def _acct(provider, publisher, ba_id, ba_name, sub_id, sub_name) -> Account:
    return Account(provider, publisher, ba_id, ba_name, sub_id, sub_name)


AWS_PROD = _acct("AWS", "Amazon Web Services, Inc.", "123456789012", "Acme Corp", "210987654321", "acme-prod")
AWS_STAGING = _acct("AWS", "Amazon Web Services, Inc.", "123456789012", "Acme Corp", "345678901234", "acme-staging")
AZ_PROD = _acct("Microsoft", "Microsoft", "7f4c2a91-3b5d-4e6f-8a7b-9c0d1e2f3a4b", "Acme EMEA",
                "a1b2c3d4-0000-4000-8000-000000000001", "emea-prod")
AZ_DEV = _acct("Microsoft", "Microsoft", "7f4c2a91-3b5d-4e6f-8a7b-9c0d1e2f3a4b", "Acme EMEA",
               "a1b2c3d4-0000-4000-8000-000000000002", "emea-dev")
GCP_ANALYTICS = _acct("Google Cloud", "Google LLC", "01A2B3-C4D5E6-F7A8B9", "Acme Data",
                      "acme-analytics-prod", "Acme Analytics")
GCP_SANDBOX = _acct("Google Cloud", "Google LLC", "01A2B3-C4D5E6-F7A8B9", "Acme Data",
                    "acme-ml-sandbox", "Acme ML Sandbox")

EC2 = "Amazon Elastic Compute Cloud"
GROWTH_ANCHOR = date(2026, 1, 1)
D = Decimal

#: the instance whose cost spikes at the end of the sample
SPIKE_RESOURCE_ID = "i-07c6d4e0f3a5b1829"
SPIKE_TYPE, SPIKE_PRICE = "c5.24xlarge", D("4.08")
_AZ = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.{kind}/{name}"


# fmt: on
def _tags(env: str, team: str, cc: str, **more: str) -> dict[str, str]:
    return {"env": env, "team": team, "cost-center": cc, **more}


# fmt: off
RESOURCES: tuple[Resource, ...] = (
    # AWS production
    Resource(AWS_PROD, EC2, "Compute", "us-east-1", "US East (N. Virginia)", "i-0a4f2b8c1d3e5f607", "web-1",
             "m5.xlarge", "BoxUsage:m5.xlarge", "Hours", D(24), D("0.192"), tags=_tags("prod", "web", "cc-1001")),
    Resource(AWS_PROD, EC2, "Compute", "us-east-1", "US East (N. Virginia)", "i-0b5e3c9d2e4f60718", "web-2",
             "m5.xlarge", "BoxUsage:m5.xlarge", "Hours", D(24), D("0.192"), tags=_tags("prod", "web", "cc-1001")),
    Resource(AWS_PROD, EC2, "Compute", "us-east-1", "US East (N. Virginia)", SPIKE_RESOURCE_ID, "batch-worker",
             "c5.4xlarge", "BoxUsage:c5.4xlarge", "Hours", D(24), D("0.68"), tags=_tags("prod", "data", "cc-1002")),
    Resource(AWS_PROD, "Amazon Relational Database Service", "Databases", "us-east-1", "US East (N. Virginia)",
             "arn:aws:rds:us-east-1:210987654321:db:orders-prod", "orders-prod", "db.r5.large",
             "InstanceUsage:db.r5.large", "Hours", D(24), D("0.25"), tags=_tags("prod", "orders", "cc-1003")),
    Resource(AWS_PROD, "Amazon Simple Storage Service", "Storage", "us-east-1", "US East (N. Virginia)",
             "arn:aws:s3:::acme-prod-assets", "acme-prod-assets", "Bucket", "TimedStorage-ByteHrs",
             "GB-Mo", D(40), D("0.023"), growth_per_day=D("0.002"), noise=0.01,
             tags=_tags("prod", "web", "cc-1001")),
    Resource(AWS_PROD, "AWS Lambda", "Compute", "us-east-1", "US East (N. Virginia)",
             "arn:aws:lambda:us-east-1:210987654321:function:checkout", "checkout", "Function",
             "Request", "Requests", D(2400000), D("0.0000002"), weekend_factor=D("0.55"),
             tags=_tags("prod", "orders", "cc-1003")),
    # AWS staging
    Resource(AWS_STAGING, EC2, "Compute", "us-west-2", "US West (Oregon)", "i-0d8e7f6a5b4c3d2e1", "staging-app",
             "t3.large", "BoxUsage:t3.large", "Hours", D(24), D("0.0832"), tags=_tags("staging", "web", "cc-1001")),
    Resource(AWS_STAGING, EC2, "Compute", "us-west-2", "US West (Oregon)", "i-0e9f8a7b6c5d4e3f2", "ci-runner",
             "c5.2xlarge", "BoxUsage:c5.2xlarge", "Hours", D(20), D("0.34"), weekend_factor=D("0.25"),
             tags=_tags("staging", "platform", "cc-1004")),
    Resource(AWS_STAGING, "Amazon Simple Storage Service", "Storage", "us-west-2", "US West (Oregon)",
             "arn:aws:s3:::acme-staging-artifacts", "acme-staging-artifacts", "Bucket", "TimedStorage-ByteHrs",
             "GB-Mo", D(12), D("0.023"), growth_per_day=D("0.003"), noise=0.01,
             tags=_tags("staging", "platform", "cc-1004")),
    # Azure
    Resource(AZ_PROD, "Virtual Machines", "Compute", "westeurope", "West Europe",
             _AZ.format(sub=AZ_PROD.sub_account_id, rg="rg-web", kind="Compute", name="virtualMachines/vm-web-01"),
             "vm-web-01", "Standard_D4s_v5", "DZH318Z0BQ4L", "Hours", D(24), D("0.192"),
             list_price=D("0.214"), tags=_tags("prod", "web-emea", "cc-2001")),
    Resource(AZ_PROD, "Virtual Machines", "Compute", "westeurope", "West Europe",
             _AZ.format(sub=AZ_PROD.sub_account_id, rg="rg-web", kind="Compute", name="virtualMachines/vm-web-02"),
             "vm-web-02", "Standard_D4s_v5", "DZH318Z0BQ4L", "Hours", D(24), D("0.192"),
             list_price=D("0.214"), tags=_tags("prod", "web-emea", "cc-2001")),
    Resource(AZ_PROD, "Azure SQL Database", "Databases", "westeurope", "West Europe",
             _AZ.format(sub=AZ_PROD.sub_account_id, rg="rg-data", kind="Sql", name="servers/sql-emea/databases/orders"),
             "orders", "GP_Gen5_4", "DZH318Z0BQPS", "Hours", D(24), D("0.505"),
             tags=_tags("prod", "orders", "cc-2002")),
    Resource(AZ_PROD, "Storage", "Storage", "westeurope", "West Europe",
             _AZ.format(sub=AZ_PROD.sub_account_id, rg="rg-data", kind="Storage", name="storageAccounts/stacmeemea"),
             "stacmeemea", "Blob Storage", "DZH317F1HKN0", "GB-Mo", D(30), D("0.0184"),
             growth_per_day=D("0.002"), noise=0.01, tags=_tags("prod", "web-emea", "cc-2001")),
    Resource(AZ_DEV, "Virtual Machines", "Compute", "northeurope", "North Europe",
             _AZ.format(sub=AZ_DEV.sub_account_id, rg="rg-dev", kind="Compute", name="virtualMachines/vm-dev-01"),
             "vm-dev-01", "Standard_B2s", "DZH318Z0BP04", "Hours", D(24), D("0.0416"),
             tags=_tags("dev", "web-emea", "cc-2001", owner="j.doe")),
    # Google Cloud
    Resource(GCP_ANALYTICS, "Compute Engine", "Compute", "europe-west1", "Belgium",
             "projects/acme-analytics-prod/zones/europe-west1-b/instances/etl-1", "etl-1", "n2-standard-8",
             "B2C6-47AC-7E1A", "Hours", D(24), D("0.3885"), tags=_tags("prod", "data", "cc-3001")),
    Resource(GCP_ANALYTICS, "BigQuery", "Analytics", "europe-west1", "Belgium",
             "projects/acme-analytics-prod/datasets/events", "events", "Dataset", "24E6-581D-38E5",
             "TiB", D("1.6"), D("6.25"), weekend_factor=D("0.35"), noise=0.12, tags=_tags("prod", "data", "cc-3001")),
    Resource(GCP_ANALYTICS, "Cloud Storage", "Storage", "europe-west1", "Belgium",
             "projects/acme-analytics-prod/buckets/acme-datalake", "acme-datalake", "Bucket", "E5F0-6A5D-7BAD",
             "GiBy.mo", D(120), D("0.02"), growth_per_day=D("0.001"), noise=0.01,
             tags=_tags("prod", "data", "cc-3001")),
    Resource(GCP_SANDBOX, "Compute Engine", "Compute", "us-central1", "Iowa",
             "projects/acme-ml-sandbox/zones/us-central1-a/instances/gpu-notebook", "gpu-notebook",
             "n1-standard-8+nvidia-tesla-t4", "CP-COMPUTEENGINE-VMIMAGE-N1", "Hours", D(10), D("0.73"),
             weekend_factor=D("0.2"), noise=0.2, tags=_tags("sandbox", "ml", "cc-3002")),
)

#: recurring monthly fee, charged on the first day of every month
MONTHLY_FEE = Resource(
    AWS_PROD, "AWS Support (Business)", "Management and Governance", "", "", "", "", "Support",
    "AWSSupportBusiness", "", D(1), D("100.00"), noise=0.0,
)


# fmt: on


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month_bounds(day: date) -> tuple[date, date]:
    start = day.replace(day=1)
    nxt = (start + timedelta(days=32)).replace(day=1)
    return start, nxt


def _quantity(res: Resource, day: date, seed: int) -> Decimal:
    rng = random.Random(f"{seed}|{res.resource_id}|{day.isoformat()}")
    factor = res.weekend_factor if day.weekday() >= 5 else D(1)
    noise = D(str(round(rng.uniform(-res.noise, res.noise), 4)))
    # growth counts from a fixed day, not from the window start, so windows agree
    growth = 1 + res.growth_per_day * (day - GROWTH_ANCHOR).days
    qty = res.quantity * factor * growth * (1 + noise)
    if res.unit == "Hours":
        qty = min(qty, D(24))
    return qty.quantize(QTY)


def _row(
    res: Resource,
    start: datetime,
    end: datetime,
    qty: Decimal,
    *,
    category: str,
    frequency: str,
    description: str,
) -> dict[str, str]:
    billed = (qty * res.unit_price).quantize(CENT)
    list_price = res.list_price or res.unit_price
    list_cost = (qty * list_price).quantize(CENT)
    bp_start, bp_end = _month_bounds(start.date())
    a = res.account
    key = (
        f"{a.provider}|{a.sub_account_id}|{res.service}|{res.resource_id or res.sku}|{start.date()}"
    )
    return {
        "ProviderName": a.provider,
        "PublisherName": a.publisher,
        "InvoiceIssuerName": a.publisher,
        "BillingAccountId": a.billing_account_id,
        "BillingAccountName": a.billing_account_name,
        "SubAccountId": a.sub_account_id,
        "SubAccountName": a.sub_account_name,
        "BillingCurrency": "USD",
        "BillingPeriodStart": _iso(_midnight(bp_start)),
        "BillingPeriodEnd": _iso(_midnight(bp_end)),
        "ChargePeriodStart": _iso(start),
        "ChargePeriodEnd": _iso(end),
        "ChargeCategory": category,
        "ChargeFrequency": frequency,
        "ChargeDescription": description,
        "ServiceName": res.service,
        "ServiceCategory": res.category,
        "RegionId": res.region_id,
        "RegionName": res.region_name,
        "ResourceId": res.resource_id,
        "ResourceName": res.name,
        "ResourceType": res.type,
        "SkuId": res.sku,
        "PricingCategory": "Standard",
        "ConsumedQuantity": format(qty, "f") if res.unit else "",
        "ConsumedUnit": res.unit,
        "PricingQuantity": format(qty, "f") if res.unit else "",
        "PricingUnit": res.unit,
        "ListUnitPrice": format(list_price, "f"),
        "ContractedUnitPrice": format(res.unit_price, "f"),
        "BilledCost": format(billed, "f"),
        "EffectiveCost": format(billed, "f"),
        "ListCost": format(list_cost, "f"),
        "ContractedCost": format(billed, "f"),
        "Tags": json.dumps(res.tags, sort_keys=True) if res.tags else "",
        "x_RecordId": "demo-" + _stable_hash(key),
    }


def _stable_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SampleSummary:
    """What the sample holds: rows, exact totals, and the spike a detector should find."""

    rows: int
    start: date
    end: date  # exclusive
    totals: dict[str, Decimal]  # currency -> BilledCost total
    by_provider: dict[str, Decimal]
    spike_resource_id: str
    spike_days: tuple[date, ...]


def generate(
    end: date | None = None, days: int = 60, seed: int = 42, spike_days: int = 3
) -> tuple[list[dict[str, str]], SampleSummary]:
    """Rows (FOCUS column -> text) for the `days` days before `end` (default: today, UTC)."""
    if days < spike_days + 7:
        raise ValueError("days must leave at least a week before the spike")
    end = end or datetime.now(UTC).date()
    start = end - timedelta(days=days)
    spike = tuple(end - timedelta(days=n) for n in range(spike_days, 0, -1))
    rows: list[dict[str, str]] = []
    for index in range(days):
        day = start + timedelta(days=index)
        begin, finish = _midnight(day), _midnight(day + timedelta(days=1))
        for res in RESOURCES:
            if res.resource_id == SPIKE_RESOURCE_ID and day in spike:
                res = replace(
                    res, type=SPIKE_TYPE, sku=f"BoxUsage:{SPIKE_TYPE}", unit_price=SPIKE_PRICE
                )
            qty = _quantity(res, day, seed)
            rows.append(
                _row(
                    res,
                    begin,
                    finish,
                    qty,
                    category="Usage",
                    frequency="Usage-Based",
                    description=f"{res.type} {res.unit} in {res.region_id}",
                )
            )
        if day.day == 1:
            m_start, m_end = _month_bounds(day)
            rows.append(
                _row(
                    MONTHLY_FEE,
                    _midnight(m_start),
                    _midnight(m_end),
                    D(1),
                    category="Purchase",
                    frequency="Recurring",
                    description="AWS Support (Business) monthly fee",
                )
            )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    by_provider: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[row["BillingCurrency"]] += Decimal(row["BilledCost"])
        by_provider[row["ProviderName"]] += Decimal(row["BilledCost"])
    summary = SampleSummary(
        len(rows), start, end, dict(totals), dict(by_provider), SPIKE_RESOURCE_ID, spike
    )
    return rows, summary


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows as a FOCUS CSV (empty cell = null); atomically, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def build_sample(
    directory: Path, end: date | None = None, days: int = 60, seed: int = 42
) -> tuple[Path, SampleSummary]:
    """Generate the sample and write it as `directory/focus-demo.csv`."""
    rows, summary = generate(end=end, days=days, seed=seed)
    return write_csv(directory / "focus-demo.csv", rows), summary
