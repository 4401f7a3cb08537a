"""AWS Cost and Usage Reports, legacy CUR (`lineItem/UnblendedCost`, or its Athena/Parquet
spelling `line_item_unblended_cost`) and CUR 2.0 Data Exports, mapped to FOCUS.

Legacy names are first turned into CUR 2.0 names (`reservation/ReservationARN` ->
`reservation_reservation_a_r_n`), so one mapping serves both. Line item types map to FOCUS
ChargeCategory/ChargeClass/ChargeFrequency; unblended cost is BilledCost, the amortised
(net when present) cost EffectiveCost, the public on-demand cost ListCost.
"""

from __future__ import annotations

import re

import polars as pl

from services.ingest.formats.common_expr import dec, dec_text, map_get, pick, tags_json

NAME = "aws-cur"

#: line item type -> (ChargeCategory, ChargeFrequency)
LINE_ITEM_TYPES = {
    "Usage": ("Usage", "Usage-Based"),
    "DiscountedUsage": ("Usage", "Usage-Based"),
    "SavingsPlanCoveredUsage": ("Usage", "Usage-Based"),
    "SavingsPlanNegation": ("Usage", "Usage-Based"),
    "Fee": ("Purchase", "One-Time"),
    "RIFee": ("Purchase", "Recurring"),
    "SavingsPlanUpfrontFee": ("Purchase", "One-Time"),
    "SavingsPlanRecurringFee": ("Purchase", "Recurring"),
    "Tax": ("Tax", "One-Time"),
    "Credit": ("Credit", "One-Time"),
    "Refund": ("Credit", "One-Time"),
    "BundledDiscount": ("Credit", "Usage-Based"),
    "EdpDiscount": ("Credit", "Usage-Based"),
    "PrivateRateDiscount": ("Credit", "Usage-Based"),
    "DistributorDiscount": ("Credit", "Usage-Based"),
    "Discount": ("Credit", "Usage-Based"),
}
#: anything else AWS adds later is kept as an Adjustment (never dropped), its type in x_LineItemType
UNKNOWN_TYPE = ("Adjustment", "One-Time")

#: product code -> FOCUS ServiceCategory (the common ones; everything else is "Other")
SERVICE_CATEGORIES = {
    "AmazonEC2": "Compute",
    "AWSLambda": "Compute",
    "AmazonECS": "Compute",
    "AmazonEKS": "Compute",
    "AmazonLightsail": "Compute",
    "AWSBatch": "Compute",
    "AmazonS3": "Storage",
    "AmazonEFS": "Storage",
    "AmazonGlacier": "Storage",
    "AWSBackup": "Storage",
    "AmazonFSx": "Storage",
    "AmazonRDS": "Databases",
    "AmazonDynamoDB": "Databases",
    "AmazonElastiCache": "Databases",
    "AmazonRedshift": "Analytics",
    "AmazonAthena": "Analytics",
    "AWSGlue": "Analytics",
    "AmazonKinesis": "Analytics",
    "AmazonES": "Analytics",
    "AmazonVPC": "Networking",
    "AmazonCloudFront": "Networking",
    "AmazonRoute53": "Networking",
    "AWSELB": "Networking",
    "AWSDataTransfer": "Networking",
    "AWSDirectConnect": "Networking",
    "AmazonApiGateway": "Networking",
    "AmazonCloudWatch": "Management and Governance",
    "AWSConfig": "Management and Governance",
    "AWSCloudTrail": "Management and Governance",
    "AWSSystemsManager": "Management and Governance",
    "AWSSecretsManager": "Security",
    "awskms": "Security",
    "AWSShield": "Security",
    "awswaf": "Security",
    "AmazonGuardDuty": "Security",
    "AmazonSNS": "Integration",
    "AWSQueueService": "Integration",
    "AmazonSQS": "Integration",
    "AmazonMQ": "Integration",
    "AWSEvents": "Integration",
    "AmazonSageMaker": "AI and Machine Learning",
    "AmazonBedrock": "AI and Machine Learning",
    "AWSSupportBusiness": "Other",
    "AWSSupportEnterprise": "Other",
}

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(column: str) -> str:
    """Legacy CUR name to CUR 2.0 name: `lineItem/UsageAccountId` -> `line_item_usage_account_id`."""
    category, _, field = column.partition("/")
    return f"{_CAMEL.sub('_', category).lower()}_{_CAMEL.sub('_', field).lower()}"


def matches(columns: list[str]) -> bool:
    names = set(columns)
    return bool({"lineItem/LineItemType", "line_item_line_item_type"} & names) and bool(
        {"lineItem/UnblendedCost", "line_item_unblended_cost"} & names
    )


#: the CUR 2.0 names `to_focus` reads (legacy columns by their CUR 2.0 spelling), besides
#: the tag columns: the reader need not convert any other column of the file
READS = frozenset(
    {
        "bill_billing_entity",
        "bill_billing_period_end_date",
        "bill_billing_period_start_date",
        "bill_invoice_id",
        "bill_invoicing_entity",
        "bill_payer_account_id",
        "bill_payer_account_name",
        "identity_line_item_id",
        "line_item_availability_zone",
        "line_item_currency_code",
        "line_item_legal_entity",
        "line_item_line_item_description",
        "line_item_line_item_type",
        "line_item_net_unblended_cost",
        "line_item_operation",
        "line_item_product_code",
        "line_item_resource_id",
        "line_item_unblended_cost",
        "line_item_unblended_rate",
        "line_item_usage_account_id",
        "line_item_usage_account_name",
        "line_item_usage_amount",
        "line_item_usage_end_date",
        "line_item_usage_start_date",
        "line_item_usage_type",
        "pricing_public_on_demand_cost",
        "pricing_public_on_demand_rate",
        "pricing_rate_id",
        "pricing_sku",
        "pricing_unit",
        "product",
        "product_instance_type",
        "product_product_name",
        "product_region",
        "product_region_code",
        "product_sku",
        "reservation_effective_cost",
        "reservation_net_effective_cost",
        "reservation_net_unused_amortized_upfront_fee_for_billing_period",
        "reservation_net_unused_recurring_fee",
        "reservation_reservation_a_r_n",
        "reservation_unused_amortized_upfront_fee_for_billing_period",
        "reservation_unused_recurring_fee",
        "resource_tags",
        "savings_plan_net_savings_plan_effective_cost",
        "savings_plan_savings_plan_a_r_n",
        "savings_plan_savings_plan_effective_cost",
        "savings_plan_total_commitment_to_date",
        "savings_plan_used_commitment",
    }
)


def _is_tag(column: str) -> bool:
    return column.startswith(("resourceTags/", "resource_tags_"))


def projection(columns: list[str]) -> list[str]:
    """The columns of a file that `to_focus` reads (a CUR has a hundred-odd; a fifth to a
    half are never mapped), so the reader parses only those."""
    return [c for c in columns if _is_tag(c) or (snake(c) if "/" in c else c) in READS]


def _tag_key(column: str) -> str:
    key = column.split("/", 1)[1] if "/" in column else column.removeprefix("resource_tags_")
    return key.removeprefix("user:").removeprefix("user_")


def to_focus(df: pl.DataFrame) -> pl.DataFrame:
    flat_tags = {c: _tag_key(c) for c in df.columns if _is_tag(c)}
    renamed = {c: snake(c) for c in df.columns if "/" in c and c not in flat_tags}
    df = df.rename(renamed)
    kind = pl.col("line_item_line_item_type")
    unblended = pick(df, "line_item_unblended_cost")
    net_unblended = pick(df, "line_item_net_unblended_cost")
    sp_effective = pick(
        df,
        "savings_plan_net_savings_plan_effective_cost",
        "savings_plan_savings_plan_effective_cost",
    )
    ri_effective = pick(df, "reservation_net_effective_cost", "reservation_effective_cost")
    ri_unused = dec(
        pick(
            df,
            "reservation_net_unused_amortized_upfront_fee_for_billing_period",
            "reservation_unused_amortized_upfront_fee_for_billing_period",
        )
    ).fill_null(0) + dec(
        pick(df, "reservation_net_unused_recurring_fee", "reservation_unused_recurring_fee")
    ).fill_null(0)
    sp_unused = dec(pick(df, "savings_plan_total_commitment_to_date")) - dec(
        pick(df, "savings_plan_used_commitment")
    )
    reservation_arn = pick(df, "reservation_reservation_a_r_n")
    savings_plan_arn = pick(df, "savings_plan_savings_plan_a_r_n")
    base = pl.coalesce(net_unblended, unblended)
    # polars computes every branch for every row: the fee arithmetic only where such fees are
    kinds = set(df.get_column("line_item_line_item_type").unique().to_list())
    sp_unused_text = (
        dec_text(sp_unused) if "SavingsPlanRecurringFee" in kinds else pl.lit(None, pl.Utf8)
    )
    ri_unused_text = dec_text(ri_unused) if "RIFee" in kinds else pl.lit(None, pl.Utf8)
    effective = (
        pl.when(kind == "SavingsPlanCoveredUsage")
        .then(sp_effective)
        .when(kind.is_in(["SavingsPlanNegation", "SavingsPlanUpfrontFee"]))
        .then(pl.lit("0"))
        .when(kind == "SavingsPlanRecurringFee")
        .then(pl.coalesce(sp_unused_text, base))
        .when(kind == "DiscountedUsage")
        .then(ri_effective)
        .when(kind == "RIFee")
        .then(ri_unused_text)
        .when((kind == "Fee") & reservation_arn.is_not_null())
        .then(pl.lit("0"))
        .otherwise(base)
    )
    categories = pl.col("_kind").replace_strict(
        {k: v[0] for k, v in LINE_ITEM_TYPES.items()}, default=UNKNOWN_TYPE[0], return_dtype=pl.Utf8
    )
    frequency = pl.col("_kind").replace_strict(
        {k: v[1] for k, v in LINE_ITEM_TYPES.items()}, default=UNKNOWN_TYPE[1], return_dtype=pl.Utf8
    )
    product_code = pick(df, "line_item_product_code")
    service_name = pl.coalesce(
        pick(df, "product_product_name"), map_get(df, "product", "product_name"), product_code
    )
    usage_start = pick(df, "line_item_usage_start_date")
    period_start = pick(df, "bill_billing_period_start_date")
    is_usage = kind.is_in(["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"])
    focus = df.select(
        pl.col("_row"),
        pl.lit("AWS").alias("ProviderName"),
        pl.coalesce(pick(df, "bill_billing_entity"), pl.lit("AWS")).alias("PublisherName"),
        pl.coalesce(
            pick(df, "bill_invoicing_entity", "line_item_legal_entity"),
            pl.lit("Amazon Web Services, Inc."),
        ).alias("InvoiceIssuerName"),
        pick(df, "bill_payer_account_id").alias("BillingAccountId"),
        pick(df, "bill_payer_account_name").alias("BillingAccountName"),
        pick(df, "line_item_usage_account_id").alias("SubAccountId"),
        pick(df, "line_item_usage_account_name").alias("SubAccountName"),
        period_start.alias("BillingPeriodStart"),
        pick(df, "bill_billing_period_end_date").alias("BillingPeriodEnd"),
        usage_start.alias("ChargePeriodStart"),
        pick(df, "line_item_usage_end_date").alias("ChargePeriodEnd"),
        pick(df, "line_item_currency_code").alias("BillingCurrency"),
        service_name.alias("ServiceName"),
        product_code.replace_strict(
            SERVICE_CATEGORIES, default="Other", return_dtype=pl.Utf8
        ).alias("ServiceCategory"),
        pick(df, "line_item_line_item_description").alias("ChargeDescription"),
        kind.alias("_kind"),
        unblended.alias("BilledCost"),
        effective.alias("EffectiveCost"),
        pl.coalesce(pick(df, "pricing_public_on_demand_cost"), unblended).alias("ListCost"),
        unblended.alias("ContractedCost"),
        pick(df, "pricing_public_on_demand_rate").alias("ListUnitPrice"),
        pick(df, "line_item_unblended_rate").alias("ContractedUnitPrice"),
        pl.when(is_usage).then(pick(df, "line_item_usage_amount")).alias("ConsumedQuantity"),
        pl.when(is_usage).then(pick(df, "pricing_unit")).alias("ConsumedUnit"),
        pick(df, "line_item_usage_amount").alias("PricingQuantity"),
        pick(df, "pricing_unit").alias("PricingUnit"),
        pick(df, "line_item_resource_id").alias("ResourceId"),
        pick(df, "product_instance_type").alias("ResourceType"),
        pl.coalesce(
            pick(df, "product_region_code", "product_region"), map_get(df, "product", "region")
        ).alias("RegionId"),
        pick(df, "line_item_availability_zone").alias("AvailabilityZone"),
        pick(df, "product_sku", "pricing_sku").alias("SkuId"),
        pick(df, "pricing_rate_id").alias("SkuPriceId"),
        pick(df, "bill_invoice_id").alias("InvoiceId"),
        pl.coalesce(reservation_arn, savings_plan_arn).alias("CommitmentDiscountId"),
        pl.when(reservation_arn.is_not_null())
        .then(pl.lit("Reservation"))
        .when(savings_plan_arn.is_not_null())
        .then(pl.lit("Savings Plan"))
        .alias("CommitmentDiscountType"),
        pl.when(reservation_arn.is_not_null())
        .then(pl.lit("Usage"))
        .when(savings_plan_arn.is_not_null())
        .then(pl.lit("Spend"))
        .alias("CommitmentDiscountCategory"),
        pl.when(kind.is_in(["DiscountedUsage", "SavingsPlanCoveredUsage"]))
        .then(pl.lit("Used"))
        .when(kind.is_in(["RIFee", "SavingsPlanRecurringFee"]))
        .then(pl.lit("Unused"))
        .alias("CommitmentDiscountStatus"),
        tags_json(df, ["resource_tags"], flat_tags, key_prefix="user_").alias("Tags"),
        kind.alias("x_LineItemType"),
        pick(df, "line_item_usage_type").alias("x_UsageType"),
        pick(df, "line_item_operation").alias("x_Operation"),
        product_code.alias("x_ProductCode"),
        pick(df, "identity_line_item_id").alias("x_LineItemId"),
    )
    correction = (pl.col("_kind") == "Refund") | (
        pl.col("ChargePeriodStart").is_not_null()
        & pl.col("BillingPeriodStart").is_not_null()
        & (
            pl.col("ChargePeriodStart").str.slice(0, 10)
            < pl.col("BillingPeriodStart").str.slice(0, 10)
        )
    )
    return focus.with_columns(
        categories.alias("ChargeCategory"),
        frequency.alias("ChargeFrequency"),
        pl.when(correction).then(pl.lit("Correction")).alias("ChargeClass"),
    ).drop("_kind")
