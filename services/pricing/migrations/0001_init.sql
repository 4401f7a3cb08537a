-- Priced cost lines, one row per x_RecordId (idempotent upsert target).
CREATE TABLE cost_lines (
    record_id             text PRIMARY KEY,
    provider              text NOT NULL,
    billing_account_id    text NOT NULL,
    sub_account_id        text,
    service_name          text NOT NULL,
    service_category      text,
    region_id             text,
    resource_id           text,
    resource_type         text,
    sku_id                text,
    charge_category       text NOT NULL,
    charge_frequency      text,
    charge_period_start   timestamptz NOT NULL,
    charge_period_end     timestamptz NOT NULL,
    billing_currency      text NOT NULL,
    billed_cost           numeric,
    effective_cost        numeric,
    list_cost             numeric,
    contracted_cost       numeric,
    consumed_quantity     numeric,
    consumed_unit         text,
    pricing_quantity      numeric,
    pricing_unit          text,
    tags                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    price_source          text NOT NULL,
    billing_scope         text,
    billing_scope_version bigint,
    import_job_id         text,
    priced_at             timestamptz NOT NULL,
    record                jsonb NOT NULL
);
CREATE INDEX cost_lines_period_idx ON cost_lines (charge_period_start);
CREATE INDEX cost_lines_scope_idx ON cost_lines (billing_scope, billing_scope_version)
    WHERE billing_scope IS NOT NULL;

-- Highest version seen per billing scope: a restated bill hides every older row of its scope.
CREATE TABLE billing_scopes (
    billing_scope  text PRIMARY KEY,
    latest_version bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Tracking record: the last offset processed per partition, written in the same
-- transaction as the lines (idempotence itself is by record id: offsets do not survive
-- a restart of the embedded broker).
CREATE TABLE consumer_positions (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    last_offset bigint NOT NULL,
    records     bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Read contract for the CLI and dashboards (see docs/pricing.md).
CREATE VIEW v_cost_lines AS
SELECT l.record_id, l.provider, l.billing_account_id, l.sub_account_id, l.service_name,
       l.service_category, l.region_id, l.resource_id, l.resource_type, l.sku_id,
       l.charge_category, l.charge_frequency, l.charge_period_start, l.charge_period_end,
       l.billing_currency, l.billed_cost, l.effective_cost, l.list_cost, l.contracted_cost,
       l.consumed_quantity, l.consumed_unit, l.pricing_quantity, l.pricing_unit, l.tags,
       l.price_source, l.billing_scope, l.billing_scope_version, l.import_job_id,
       l.priced_at, l.record
FROM cost_lines l
LEFT JOIN billing_scopes s ON s.billing_scope = l.billing_scope
WHERE l.billing_scope IS NULL
   OR coalesce(l.billing_scope_version, 0) >= s.latest_version;
