"""The `pricing` schema: cost lines (upsert by record id), billing scopes, tracking records.

Bulk path: COPY the priced records' JSON into a temporary table, then one INSERT ... SELECT
that lets PostgreSQL extract the columns from the JSON (no per-row Decimal building in
Python) and upsert on record id, all in the transaction that records the batch as processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS pricing_stage (
    ord integer NOT NULL, record_id text NOT NULL, body text NOT NULL
) ON COMMIT DELETE ROWS
"""

_COLUMNS = """record_id, provider, billing_account_id, sub_account_id, service_name,
    service_category, region_id, resource_id, resource_type, sku_id, charge_category,
    charge_frequency, charge_period_start, charge_period_end, billing_currency, billed_cost,
    effective_cost, list_cost, contracted_cost, consumed_quantity, consumed_unit,
    pricing_quantity, pricing_unit, tags, price_source, billing_scope, billing_scope_version,
    import_job_id, priced_at, record"""

_UPDATABLE = [c.strip() for c in _COLUMNS.split(",") if c.strip() != "record_id"]

UPSERT_LINES = f"""
INSERT INTO pricing.cost_lines ({_COLUMNS})
SELECT record_id, r->>'ProviderName', r->>'BillingAccountId', r->>'SubAccountId',
       r->>'ServiceName', r->>'ServiceCategory', r->>'RegionId', r->>'ResourceId',
       r->>'ResourceType', r->>'SkuId', r->>'ChargeCategory', r->>'ChargeFrequency',
       (r->>'ChargePeriodStart')::timestamptz, (r->>'ChargePeriodEnd')::timestamptz,
       r->>'BillingCurrency', (r->>'BilledCost')::numeric, (r->>'EffectiveCost')::numeric,
       (r->>'ListCost')::numeric, (r->>'ContractedCost')::numeric,
       (r->>'ConsumedQuantity')::numeric, r->>'ConsumedUnit',
       (r->>'PricingQuantity')::numeric, r->>'PricingUnit',
       coalesce(r->'Tags', '{{}}'::jsonb), r->>'x_PriceSource', r->>'x_BillingScope',
       (r->>'x_BillingScopeVersion')::bigint, r->>'x_ImportJobId',
       coalesce((r->>'x_PricedAt')::timestamptz, now()), r
FROM (
    SELECT DISTINCT ON (record_id) record_id, body::jsonb AS r
    FROM pricing_stage ORDER BY record_id, ord DESC
) s
ON CONFLICT (record_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATABLE)}
WHERE cost_lines.billing_scope_version IS NULL
   OR EXCLUDED.billing_scope_version IS NULL
   OR EXCLUDED.billing_scope_version >= cost_lines.billing_scope_version
"""

UPSERT_SCOPES = """
INSERT INTO pricing.billing_scopes (billing_scope, latest_version)
SELECT r->>'x_BillingScope', max(coalesce((r->>'x_BillingScopeVersion')::bigint, 0))
FROM (SELECT body::jsonb AS r FROM pricing_stage) s
WHERE r->>'x_BillingScope' IS NOT NULL
GROUP BY 1
ON CONFLICT (billing_scope) DO UPDATE
SET latest_version = EXCLUDED.latest_version, updated_at = now()
WHERE EXCLUDED.latest_version > billing_scopes.latest_version
"""

# Rows of superseded scope versions are invisible through the view; deleting them keeps the
# table from growing with every restatement.
PRUNE_SUPERSEDED = """
DELETE FROM pricing.cost_lines l
USING pricing.billing_scopes s
WHERE l.billing_scope = s.billing_scope
  AND s.billing_scope = ANY($1::text[])
  AND coalesce(l.billing_scope_version, 0) < s.latest_version
"""

TRACK = """
INSERT INTO pricing.consumer_positions (topic, partition, last_offset, records)
SELECT t, p, o, n FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) AS x(t, p, o, n)
ON CONFLICT (topic, partition) DO UPDATE
SET last_offset = GREATEST(consumer_positions.last_offset, EXCLUDED.last_offset),
    records = consumer_positions.records + EXCLUDED.records, updated_at = now()
"""


@dataclass(frozen=True, slots=True)
class Position:
    """Last offset of a partition in a processed batch, and how many records it had there."""

    topic: str
    partition: int
    offset: int
    records: int


class PricingStore:
    """Owns schema `pricing`; uses the service runtime's pool once the service has started."""

    def __init__(self, runtime) -> None:  # runtime: finfocus.service.ServiceRuntime
        self._runtime = runtime

    async def store_batch(
        self, lines: Sequence[tuple[str, str]], positions: Sequence[Position], scopes: Sequence[str] = ()
    ) -> None:
        """Upsert priced lines `(record_id, priced record JSON)` and record the batch as
        processed, in one transaction."""
        async with self._runtime.pool.acquire() as conn:
            async with conn.transaction():
                if lines:
                    await conn.execute(CREATE_STAGE)
                    await conn.copy_records_to_table(
                        "pricing_stage",
                        records=[(i, rid, body) for i, (rid, body) in enumerate(lines)],
                        columns=["ord", "record_id", "body"],
                    )
                    if scopes:
                        await conn.execute(UPSERT_SCOPES)
                    await conn.execute(UPSERT_LINES)
                    if scopes:
                        await conn.execute(PRUNE_SUPERSEDED, list(scopes))
                if positions:
                    await conn.execute(
                        TRACK,
                        [p.topic for p in positions],
                        [p.partition for p in positions],
                        [p.offset for p in positions],
                        [p.records for p in positions],
                    )
