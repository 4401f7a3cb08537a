"""The `pricing` schema: cost lines (upsert by record id), billing scopes, tracking records.

Bulk path: COPY the priced records' JSON into a temporary table, then one INSERT ... SELECT
that lets PostgreSQL extract the columns from the JSON (no per-row Decimal building in
Python) and upsert on record id, all in the transaction that records the batch as processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS pricing_stage_v2 (
    ord integer NOT NULL, record_id text NOT NULL, provider text NOT NULL,
    account text NOT NULL, body text NOT NULL
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
WITH incoming AS (
    SELECT DISTINCT ON (record_id) record_id, body::jsonb AS r
    FROM pricing_stage_v2 ORDER BY record_id, ord DESC
), earlier AS (
    SELECT c.record_id, c.import_job_id FROM pricing.cost_lines c JOIN incoming USING (record_id)
), written AS (
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
    FROM incoming s
    ON CONFLICT (record_id) DO UPDATE SET
        {", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATABLE)}, stored_at = now()
    WHERE cost_lines.provider = EXCLUDED.provider
      AND cost_lines.billing_account_id = EXCLUDED.billing_account_id
      AND (cost_lines.billing_scope_version IS NULL
           OR EXCLUDED.billing_scope_version IS NULL
           OR EXCLUDED.billing_scope_version >= cost_lines.billing_scope_version)
    RETURNING record_id, import_job_id
)
INSERT INTO pricing.job_progress (import_job_id, rows)
SELECT w.import_job_id, count(*) FROM written w LEFT JOIN earlier e USING (record_id)
WHERE w.import_job_id IS NOT NULL AND e.import_job_id IS DISTINCT FROM w.import_job_id
GROUP BY 1
ON CONFLICT (import_job_id) DO UPDATE
SET rows = job_progress.rows + EXCLUDED.rows, updated_at = now()
"""

UPSERT_SCOPES = """
INSERT INTO pricing.billing_scopes (billing_scope, latest_version)
SELECT r->>'x_BillingScope', max(coalesce((r->>'x_BillingScopeVersion')::bigint, 0))
FROM (SELECT body::jsonb AS r FROM pricing_stage_v2) s
WHERE r->>'x_BillingScope' IS NOT NULL
GROUP BY 1
ON CONFLICT (billing_scope) DO UPDATE
SET latest_version = EXCLUDED.latest_version, updated_at = now()
WHERE EXCLUDED.latest_version > billing_scopes.latest_version
RETURNING billing_scope
"""

# Rows of superseded scope versions are invisible through the view; deleting them keeps the
# table from growing with every restatement.
# Record identity is scoped to (ProviderName, BillingAccountId): the upsert never replaces
# another account's line (its WHERE above), and this names the records it left out, after the
# upsert so that a line a concurrent chunk committed meanwhile is seen too.
OTHER_OWNERS = """
SELECT DISTINCT ON (s.record_id) s.record_id, c.provider, c.billing_account_id
FROM pricing_stage_v2 s JOIN pricing.cost_lines c USING (record_id)
WHERE c.provider <> s.provider OR c.billing_account_id <> s.account
"""

PRUNE_SUPERSEDED = """
DELETE FROM pricing.cost_lines l
USING pricing.billing_scopes s
WHERE l.billing_scope = s.billing_scope
  AND s.billing_scope = ANY($1::text[])
  AND coalesce(l.billing_scope_version, 0) < s.latest_version
"""

TRACK = """
INSERT INTO pricing.processed_batches (topic, partition, first_offset, last_offset, records)
SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[])
"""


@dataclass(frozen=True, slots=True)
class Position:
    """Last offset of a partition in a processed batch, and how many records it had there."""

    topic: str
    partition: int
    offset: int
    records: int
    first_offset: int | None = None


class PricingStore:
    """Owns schema `pricing`; uses the service runtime's pool once the service has started."""

    def __init__(self, runtime) -> None:  # runtime: finfocus.service.ServiceRuntime
        self._runtime = runtime

    async def store_batch(
        self,
        lines: Sequence[tuple[str, str]],
        positions: Sequence[Position],
        scopes: Sequence[str] = (),
        owners: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, str]:
        """Upsert priced lines `(record_id, priced record JSON)` and record the batch as
        processed, in one transaction. `owners` gives each line's (ProviderName,
        BillingAccountId) (read from the JSON when absent). Returns the lines refused because
        their record id belongs to another account: record id -> reason."""
        if owners is None:
            owners = [_owner(body) for _, body in lines]
        refused: dict[str, str] = {}
        async with self._runtime.pool.acquire() as conn, conn.transaction():
            if lines:
                await conn.execute(CREATE_STAGE)
                await conn.copy_records_to_table(
                    "pricing_stage_v2",
                    records=[
                        (i, rid, owner[0], owner[1], body)
                        for i, ((rid, body), owner) in enumerate(zip(lines, owners, strict=True))
                    ],
                    columns=["ord", "record_id", "provider", "account", "body"],
                )
                # Only scopes whose version moved up in this batch can have superseded
                # rows: pruning every scope of every chunk rescans a whole billing period
                # per chunk (quadratic in the size of an import).
                newer = (
                    [r["billing_scope"] for r in await conn.fetch(UPSERT_SCOPES)] if scopes else []
                )
                await conn.execute(UPSERT_LINES)
                for row in await conn.fetch(OTHER_OWNERS):
                    refused[row["record_id"]] = (
                        f"x_RecordId {row['record_id']!r} is already stored for "
                        f"{row['provider']} billing account {row['billing_account_id']!r}: "
                        "a record id is scoped to (ProviderName, BillingAccountId) and never "
                        "replaces another account's line"
                    )
                if newer:
                    await conn.execute(PRUNE_SUPERSEDED, newer)
            if positions:
                await conn.execute(
                    TRACK,
                    [p.topic for p in positions],
                    [p.partition for p in positions],
                    [p.offset if p.first_offset is None else p.first_offset for p in positions],
                    [p.offset for p in positions],
                    [p.records for p in positions],
                )
        return refused

    # -- broker loss (see services/pricing/recovery.py) ----------------------------------
    async def last_epoch(self) -> str | None:
        return await self._runtime.pool.fetchval("SELECT epoch FROM pricing.broker_epoch")

    async def record_epoch(self, epoch: str) -> None:
        await self._runtime.pool.execute(
            "INSERT INTO pricing.broker_epoch (epoch) VALUES ($1) ON CONFLICT (only_row) "
            "DO UPDATE SET epoch = EXCLUDED.epoch, recorded_at = now()",
            epoch,
        )

    async def start_recovery(self, epoch: str, since) -> int:
        return await self._runtime.pool.fetchval(
            "INSERT INTO pricing.recoveries (epoch, since) VALUES ($1, $2) RETURNING recovery_id",
            epoch,
            since,
        )

    async def recovery_progress(
        self, recovery_id: int, rows: int, state: str = "running", error: str | None = None
    ) -> None:
        await self._runtime.pool.execute(
            "UPDATE pricing.recoveries SET rows = $2, state = $3, error = $4, "
            "finished_at = CASE WHEN $3 = 'running' THEN NULL ELSE now() END WHERE recovery_id = $1",
            recovery_id,
            rows,
            state,
            error,
        )

    async def lines_stored_since(self, since, batch: int):
        """The visible lines stored or updated at or after `since` (all when None), as
        (partition key, priced record JSON) batches, read through one cursor (no index on
        `stored_at`: a single scan, once per broker loss)."""
        async with self._runtime.pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(STORED_SINCE, since)
            while rows := await cursor.fetch(batch):
                yield [(r["key"], r["body"]) for r in rows]


STORED_SINCE = """
SELECT l.provider || ':' || coalesce(l.sub_account_id, l.billing_account_id) AS key,
       l.record::text AS body
FROM pricing.cost_lines l
LEFT JOIN pricing.billing_scopes s ON s.billing_scope = l.billing_scope
WHERE ($1::timestamptz IS NULL OR l.stored_at >= $1)
  AND (l.billing_scope IS NULL OR coalesce(l.billing_scope_version, 0) >= s.latest_version)
"""


def _owner(body: str) -> tuple[str, str]:
    record = orjson.loads(body)
    return record["ProviderName"], record["BillingAccountId"]


SAVE_HEALTH = """
INSERT INTO pricing.plugin_health (plugin, state, calls, failures, cache_hits, restarts, last_error, updated_at)
SELECT * , now() FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
ON CONFLICT (plugin) DO UPDATE SET state = EXCLUDED.state, calls = EXCLUDED.calls,
    failures = EXCLUDED.failures, cache_hits = EXCLUDED.cache_hits, restarts = EXCLUDED.restarts,
    last_error = EXCLUDED.last_error, updated_at = now()
"""

CURRENT_PRICES = """
SELECT source, provider, service, sku, region, currency, unit_price, unit
FROM pricing.catalog_prices WHERE effective_to IS NULL AND source = ANY($1::text[])
"""

CLOSE_PRICE = """
UPDATE pricing.catalog_prices SET effective_to = $7
WHERE effective_to IS NULL AND source = $1 AND provider = $2 AND service = $3 AND sku = $4
  AND region = $5 AND currency = $6
"""

OPEN_PRICE = """
INSERT INTO pricing.catalog_prices
    (source, provider, service, sku, region, currency, unit_price, unit, description, effective_from)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

TOUCH_PRICES = """
UPDATE pricing.catalog_prices SET fetched_at = now()
WHERE effective_to IS NULL AND source = ANY($1::text[])
"""


async def save_health(pool, report: dict[str, dict]) -> None:
    """Record the plugin host's report (what `finfocus plugin list` shows)."""
    if not report:
        return
    names = list(report)
    await pool.execute(
        SAVE_HEALTH,
        names,
        [report[n]["state"] for n in names],
        [report[n]["calls"] for n in names],
        [report[n]["failures"] for n in names],
        [report[n]["cache_hits"] for n in names],
        [report[n]["restarts"] for n in names],
        [report[n]["last_error"] for n in names],
    )


async def record_prices(conn, prices, now) -> tuple[int, int]:
    """Upsert catalog prices in one transaction: an unchanged price stays current, a changed
    one is closed at `now` and the new one opens (price history). Returns (new or changed,
    unchanged)."""
    async with conn.transaction():
        sources = sorted({p.source for p in prices})
        current = {
            (r["source"], r["provider"], r["service"], r["sku"], r["region"], r["currency"]): (
                r["unit_price"],
                r["unit"],
            )
            for r in await conn.fetch(CURRENT_PRICES, sources)
        }
        fresh, close = [], []
        for p in prices:
            key = (p.source, p.provider, p.service, p.sku, p.region, p.currency)
            now_price = current.get(key)
            if now_price == (p.unit_price, p.unit):
                continue
            if now_price is not None:
                close.append((*key, now))
            fresh.append(
                (
                    *key,
                    p.unit_price,
                    p.unit,
                    p.description,
                    now if now_price is not None else (p.effective_from or now),
                )
            )
            current[key] = (p.unit_price, p.unit)
        if close:
            await conn.executemany(CLOSE_PRICE, close)
        if fresh:
            await conn.executemany(OPEN_PRICE, fresh)
        await conn.execute(TOUCH_PRICES, sources)
    return len(fresh), len(prices) - len(fresh)


# exchange rates (migration 0012): `finfocus fx import` writes, `cost projected --currency` reads the view
FX_UPSERT = """
INSERT INTO pricing.fx_rates (rate_date, base, currency, rate, source)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (rate_date, base, currency) DO UPDATE SET rate = EXCLUDED.rate, source = EXCLUDED.source,
    imported_at = now()
"""
FX_READ = "SELECT rate_date, base, currency, rate, source FROM pricing.v_fx_rates"


async def store_fx_rates(conn, rates) -> int:
    """Upsert `services.pricing.fx.Rate`s in one transaction (a re-imported day is replaced)."""
    async with conn.transaction():
        await conn.executemany(
            FX_UPSERT, [(r.day, r.base, r.currency, r.rate, r.source) for r in rates]
        )
    return len(rates)


async def fetch_fx_rates(conn) -> list:
    from services.pricing.fx import Rate

    return [
        Rate(r["rate_date"], r["base"].strip(), r["currency"].strip(), r["rate"], r["source"])
        for r in await conn.fetch(FX_READ)
    ]
