"""Azure cost details exports (EA and MCA; actual and amortised cost), mapped to FOCUS.

Column names differ in case between EA (`CostInBillingCurrency`) and MCA
(`costInBillingCurrency`), so they are matched case-insensitively. The `Date` column is the
charge day; billing period end dates are inclusive in Azure and exclusive in FOCUS.
An amortised export is recognised by its `UnusedReservation`/`UnusedSavingsPlan` rows
(or `x_ExportType=amortized`): there BilledCost keeps what was invoiced for the row (zero
for commitment-covered usage) and EffectiveCost the amortised cost.
"""

from __future__ import annotations

import polars as pl

from services.ingest.formats.common import parse_timestamp_column, rfc3339
from services.ingest.formats.common_expr import dec, dec_text, pick, tags_json

NAME = "azure"

CHARGE_TYPES = {
    "Usage": "Usage",
    "Purchase": "Purchase",
    "Tax": "Tax",
    "Refund": "Credit",
    "Credit": "Credit",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "Adjustment": "Adjustment",
    "RoundingAdjustment": "Adjustment",
}
FREQUENCIES = {"UsageBased": "Usage-Based", "Recurring": "Recurring", "OneTime": "One-Time"}
SERVICE_CATEGORIES = {
    "Virtual Machines": "Compute",
    "Azure App Service": "Compute",
    "Functions": "Compute",
    "Container Instances": "Compute",
    "Azure Kubernetes Service": "Compute",
    "Storage": "Storage",
    "Backup": "Storage",
    "SQL Database": "Databases",
    "Azure Cosmos DB": "Databases",
    "Azure Database for PostgreSQL": "Databases",
    "Azure Database for MySQL": "Databases",
    "Redis Cache": "Databases",
    "Bandwidth": "Networking",
    "Virtual Network": "Networking",
    "Load Balancer": "Networking",
    "Content Delivery Network": "Networking",
    "Azure DNS": "Networking",
    "VPN Gateway": "Networking",
    "Application Gateway": "Networking",
    "Azure Monitor": "Management and Governance",
    "Log Analytics": "Management and Governance",
    "Key Vault": "Security",
    "Microsoft Defender for Cloud": "Security",
    "Event Hubs": "Integration",
    "Service Bus": "Integration",
    "Logic Apps": "Integration",
    "Cognitive Services": "AI and Machine Learning",
    "Azure OpenAI Service": "AI and Machine Learning",
    "Azure Synapse Analytics": "Analytics",
    "Azure Data Factory v2": "Analytics",
}


def matches(columns: list[str]) -> bool:
    names = {c.lower().lstrip("\ufeff") for c in columns}
    return (
        {"metercategory", "chargetype"} <= names
        and bool({"costinbillingcurrency", "pretaxcost", "cost"} & names)
        and "subscriptionid" in names
    )


def _lowercase(df: pl.DataFrame) -> pl.DataFrame:
    seen: set[str] = set()
    keep, rename = [], {}
    for column in df.columns:
        low = column.lower().lstrip("\ufeff")
        if low in seen:
            continue  # a case duplicate: the first spelling wins
        seen.add(low)
        keep.append(column)
        rename[column] = low
    return df.select(keep).rename(rename)


def _dates(df: pl.DataFrame, column: str, add_days: int = 0) -> pl.Series:
    if column not in df.columns:
        return pl.Series(column, [None] * df.height, dtype=pl.Utf8)
    parsed = parse_timestamp_column(df, column)
    text = df.select(
        rfc3339(pl.lit(parsed) + pl.duration(days=add_days), fractions=False)
    ).to_series()
    # a value that does not parse stays as it was, so the shared checks name it
    return df.select(
        pl.when(pl.lit(parsed).is_null()).then(pl.col(column)).otherwise(pl.lit(text))
    ).to_series()


def to_focus(df: pl.DataFrame) -> pl.DataFrame:
    df = _lowercase(df)
    df = df.with_columns(
        _dates(df, "date").alias("_start"),
        _dates(df, "date", 1).alias("_end"),
        _dates(df, "billingperiodstartdate").alias("_bp_start"),
        _dates(df, "billingperiodenddate", 1).alias("_bp_end"),
    )
    charge_type = pick(df, "chargetype")
    pricing_model = pick(df, "pricingmodel")
    cost = pick(df, "costinbillingcurrency", "pretaxcost", "cost")
    amortised = (
        "chargetype" in df.columns
        and df.get_column("chargetype").is_in(["UnusedReservation", "UnusedSavingsPlan"]).any()
    ) or (
        "x_exporttype" in df.columns
        and (df.get_column("x_exporttype").str.to_lowercase() == "amortized").any()
    )
    commitment = pricing_model.is_in(["Reservation", "SavingsPlan"])
    if amortised:
        billed = (
            pl.when((commitment & (charge_type == "Usage")) | charge_type.str.starts_with("Unused"))
            .then(pl.lit("0"))
            .otherwise(cost)
        )
        effective = cost
    else:
        billed = cost
        effective = (
            pl.when(commitment & (charge_type == "Purchase")).then(pl.lit("0")).otherwise(cost)
        )
    quantity = pick(df, "quantity")
    payg_price = pick(df, "paygprice")
    list_cost = pl.coalesce(
        pick(df, "paygcostinbillingcurrency"),
        pl.when(payg_price.is_not_null() & quantity.is_not_null()).then(
            dec_text(dec(payg_price) * dec(quantity))
        ),
        cost,
    )
    is_usage = charge_type == "Usage"
    meter_category = pick(df, "metercategory")
    resource_id = pick(df, "resourceid", "instanceid")
    commitment_id = pick(df, "benefitid", "reservationid")
    focus = df.select(
        pl.col("_row"),
        pl.lit("Microsoft").alias("ProviderName"),
        pl.coalesce(pick(df, "publishername"), pl.lit("Microsoft")).alias("PublisherName"),
        pl.lit("Microsoft").alias("InvoiceIssuerName"),
        pl.coalesce(pick(df, "billingaccountid", "billingprofileid", "enrollmentnumber")).alias(
            "BillingAccountId"
        ),
        pick(df, "billingaccountname").alias("BillingAccountName"),
        pick(df, "subscriptionid", "subscriptionguid").alias("SubAccountId"),
        pick(df, "subscriptionname").alias("SubAccountName"),
        pl.col("_bp_start").alias("BillingPeriodStart"),
        pl.col("_bp_end").alias("BillingPeriodEnd"),
        pl.col("_start").alias("ChargePeriodStart"),
        pl.col("_end").alias("ChargePeriodEnd"),
        pick(df, "billingcurrencycode", "billingcurrency", "currency").alias("BillingCurrency"),
        pl.coalesce(meter_category, pick(df, "consumedservice")).alias("ServiceName"),
        meter_category.replace_strict(
            SERVICE_CATEGORIES, default="Other", return_dtype=pl.Utf8
        ).alias("ServiceCategory"),
        charge_type.replace_strict(CHARGE_TYPES, default="Adjustment", return_dtype=pl.Utf8).alias(
            "ChargeCategory"
        ),
        pl.when(charge_type == "Refund").then(pl.lit("Correction")).alias("ChargeClass"),
        pick(df, "frequency")
        .replace_strict(FREQUENCIES, default=None, return_dtype=pl.Utf8)
        .alias("ChargeFrequency"),
        pl.coalesce(pick(df, "metername"), pick(df, "productname")).alias("ChargeDescription"),
        billed.alias("BilledCost"),
        effective.alias("EffectiveCost"),
        list_cost.alias("ListCost"),
        cost.alias("ContractedCost"),
        payg_price.alias("ListUnitPrice"),
        pick(df, "unitprice").alias("ContractedUnitPrice"),
        pl.when(is_usage).then(quantity).alias("ConsumedQuantity"),
        pl.when(is_usage).then(pick(df, "unitofmeasure")).alias("ConsumedUnit"),
        quantity.alias("PricingQuantity"),
        pick(df, "unitofmeasure").alias("PricingUnit"),
        resource_id.alias("ResourceId"),
        pl.coalesce(pick(df, "resourcename"), resource_id.str.extract(r"([^/]+)$")).alias(
            "ResourceName"
        ),
        pick(df, "resourcelocation", "location")
        .str.to_lowercase()
        .str.replace_all(" ", "")
        .alias("RegionId"),
        pick(df, "meterregion").alias("RegionName"),
        pick(df, "availabilityzone").alias("AvailabilityZone"),
        pick(df, "meterid", "productid").alias("SkuId"),
        pick(df, "partnumber").alias("SkuPriceId"),
        pick(df, "invoiceid").alias("InvoiceId"),
        commitment_id.alias("CommitmentDiscountId"),
        pick(df, "benefitname", "reservationname").alias("CommitmentDiscountName"),
        pl.when(commitment_id.is_null())
        .then(None)
        .when(pricing_model == "SavingsPlan")
        .then(pl.lit("Savings Plan"))
        .otherwise(pl.lit("Reservation"))
        .alias("CommitmentDiscountType"),
        pl.when(commitment_id.is_null())
        .then(None)
        .when(charge_type.str.starts_with("Unused"))
        .then(pl.lit("Unused"))
        .when(is_usage)
        .then(pl.lit("Used"))
        .alias("CommitmentDiscountStatus"),
        _tags(df).alias("Tags"),
        pick(df, "resourcegroup", "resourcegroupname").alias("x_ResourceGroup"),
        pick(df, "metersubcategory").alias("x_MeterSubCategory"),
        charge_type.alias("x_ChargeType"),
        pricing_model.alias("x_PricingModel"),
    )
    return focus


def _tags(df: pl.DataFrame) -> pl.Expr:
    """Azure writes tags as JSON members without the braces (`"env": "prod","team": "a"`)."""
    if "tags" not in df.columns or df.schema["tags"] != pl.Utf8:
        return tags_json(df, ["tags"], {})
    text = pl.col("tags").str.strip_chars()
    return (
        pl.when(text.str.len_bytes() == 0)
        .then(None)
        .when(text.str.starts_with("{"))
        .then(text)
        .otherwise(pl.concat_str(pl.lit("{"), text, pl.lit("}")))
    )
