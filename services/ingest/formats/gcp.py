"""GCP Cloud Billing export, standard usage cost schema (BigQuery), as JSON lines or Parquet.

Nested records are read as they are: `service.description`, `project.id`, `location.region`,
`usage.amount`, `labels` (key/value list) and `credits` (a list of negative amounts).
BilledCost and EffectiveCost are `cost` plus the row's credits (what Google's own FOCUS view
does); ListCost is `cost_at_list` when exported, `cost` otherwise; the credits themselves
travel in `x_Credits`. `invoice.month` (`202409`) gives the billing period.
"""

from __future__ import annotations

import polars as pl
from polars.datatypes import DataTypeClass

from services.ingest.formats.common_expr import dec, dec_text, pick, tags_json

NAME = "gcp"

COST_TYPES = {
    "regular": "Usage",
    "tax": "Tax",
    "adjustment": "Adjustment",
    "rounding error": "Adjustment",
}
FREQUENCIES = {
    "regular": "Usage-Based",
    "tax": "One-Time",
    "adjustment": "One-Time",
    "rounding error": "One-Time",
}
SERVICE_CATEGORIES = {
    "Compute Engine": "Compute",
    "Cloud Run": "Compute",
    "Cloud Functions": "Compute",
    "Kubernetes Engine": "Compute",
    "App Engine": "Compute",
    "Cloud Storage": "Storage",
    "Filestore": "Storage",
    "Cloud SQL": "Databases",
    "Cloud Spanner": "Databases",
    "Firestore": "Databases",
    "Cloud Bigtable": "Databases",
    "BigQuery": "Analytics",
    "Dataflow": "Analytics",
    "Dataproc": "Analytics",
    "Pub/Sub": "Integration",
    "Networking": "Networking",
    "Cloud DNS": "Networking",
    "Cloud CDN": "Networking",
    "Cloud Load Balancing": "Networking",
    "Cloud Logging": "Management and Governance",
    "Cloud Monitoring": "Management and Governance",
    "Vertex AI": "AI and Machine Learning",
    "Secret Manager": "Security",
    "Cloud Key Management Service (KMS)": "Security",
}


def matches(columns: list[str]) -> bool:
    names = set(columns)
    return {"billing_account_id", "cost", "currency"} <= names and bool(
        {"usage_start_time", "service"} & names
    )


def _field(df: pl.DataFrame, column: str, field: str) -> pl.Expr:
    """`column.field` of a struct column (or a flattened `column_field` / `column.field` column)."""
    for flat in (f"{column}.{field}", f"{column}_{field}"):
        if flat in df.columns:
            return pl.col(flat).cast(pl.Utf8)
    dtype = df.schema[column] if column in df.columns else None
    if isinstance(dtype, pl.Struct) and field in [f.name for f in dtype.fields]:
        return _text(pl.col(column).struct.field(field), dtype.to_schema()[field])
    return pl.lit(None, pl.Utf8)


def _text(expr: pl.Expr, dtype: pl.DataType | DataTypeClass) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return expr.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return expr.cast(pl.Utf8)


def _credits(df: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """(sum of the credit amounts as exact text, the credits as JSON text)."""
    if "credits" not in df.columns or not isinstance(df.schema["credits"], pl.List):
        return pl.lit(None, pl.Utf8), pl.lit(None, pl.Utf8)
    amounts = pl.col("credits").list.eval(
        pl.element().struct.field("amount").cast(pl.Utf8).str.to_decimal(scale=18)
    )
    total = pl.when(pl.col("credits").list.len() > 0).then(dec_text(amounts.list.sum()))
    as_json = pl.when(pl.col("credits").list.len() > 0).then(
        pl.format(
            "[{}]", pl.col("credits").list.eval(pl.element().struct.json_encode()).list.join(",")
        )
    )
    return total, as_json


def to_focus(df: pl.DataFrame) -> pl.DataFrame:
    cost = pick(df, "cost")
    credit_total, credits_json = _credits(df)
    net = (
        pl.when(credit_total.is_null())
        .then(cost)
        .otherwise(dec_text(dec(cost) + dec(credit_total)))
    )
    cost_type = pl.coalesce(pick(df, "cost_type"), pl.lit("regular"))
    sku_description = _field(df, "sku", "description")
    commitment_fee = (cost_type == "regular") & sku_description.str.contains("(?i)commitment")
    month = _field(df, "invoice", "month")
    period_start = pl.when(month.str.len_bytes() == 6).then(
        pl.format("{}-{}-01T00:00:00Z", month.str.slice(0, 4), month.str.slice(4, 2))
    )
    period_end = pl.when(month.str.len_bytes() == 6).then(
        (month.str.strptime(pl.Date, "%Y%m", strict=False).dt.offset_by("1mo")).dt.strftime(
            "%Y-%m-%dT00:00:00Z"
        )
    )
    service = _field(df, "service", "description")
    usage_unit = _field(df, "usage", "unit")
    is_usage = (cost_type == "regular") & ~commitment_fee
    return df.select(
        pl.col("_row"),
        pl.lit("Google Cloud").alias("ProviderName"),
        pl.lit("Google Cloud").alias("PublisherName"),
        pl.lit("Google").alias("InvoiceIssuerName"),
        pick(df, "billing_account_id").alias("BillingAccountId"),
        _field(df, "project", "id").alias("SubAccountId"),
        _field(df, "project", "name").alias("SubAccountName"),
        period_start.alias("BillingPeriodStart"),
        period_end.alias("BillingPeriodEnd"),
        pick(df, "usage_start_time").alias("ChargePeriodStart"),
        pick(df, "usage_end_time").alias("ChargePeriodEnd"),
        pick(df, "currency").alias("BillingCurrency"),
        service.alias("ServiceName"),
        service.replace_strict(SERVICE_CATEGORIES, default="Other", return_dtype=pl.Utf8).alias(
            "ServiceCategory"
        ),
        pl.when(commitment_fee)
        .then(pl.lit("Purchase"))
        .otherwise(cost_type.replace_strict(COST_TYPES, default="Adjustment", return_dtype=pl.Utf8))
        .alias("ChargeCategory"),
        pl.when(cost_type == "adjustment").then(pl.lit("Correction")).alias("ChargeClass"),
        pl.when(commitment_fee)
        .then(pl.lit("Recurring"))
        .otherwise(cost_type.replace_strict(FREQUENCIES, default="One-Time", return_dtype=pl.Utf8))
        .alias("ChargeFrequency"),
        sku_description.alias("ChargeDescription"),
        net.alias("BilledCost"),
        net.alias("EffectiveCost"),
        pl.coalesce(pick(df, "cost_at_list"), cost).alias("ListCost"),
        cost.alias("ContractedCost"),
        pl.when(is_usage).then(_field(df, "usage", "amount")).alias("ConsumedQuantity"),
        pl.when(is_usage).then(usage_unit).alias("ConsumedUnit"),
        _field(df, "usage", "amount_in_pricing_units").alias("PricingQuantity"),
        _field(df, "usage", "pricing_unit").alias("PricingUnit"),
        pl.coalesce(_field(df, "resource", "global_name"), _field(df, "resource", "name")).alias(
            "ResourceId"
        ),
        _field(df, "resource", "name").alias("ResourceName"),
        _field(df, "location", "region").alias("RegionId"),
        _field(df, "location", "zone").alias("AvailabilityZone"),
        _field(df, "sku", "id").alias("SkuId"),
        tags_json(df, ["labels"], {}).alias("Tags"),
        _field(df, "project", "number").alias("x_ProjectNumber"),
        _field(df, "service", "id").alias("x_ServiceId"),
        cost_type.alias("x_CostType"),
        month.alias("x_InvoiceMonth"),
        credits_json.alias("x_Credits"),
    )
