-- A daily aggregate of the cost lines, for reads that need no per-line dimension (the api's
-- insights and most cost queries over millions of lines).
--
-- Kept exact without touching the ingest hot path: statement triggers on cost_lines only mark
-- the UTC days a statement touched (INSERT ... ON CONFLICT DO NOTHING takes no row lock, so
-- parallel writers never wait on each other here); pricing recomputes marked days from the
-- lines in the background (services/pricing/aggregate.py). Readers use the aggregate for a
-- window only when none of its days is marked (v_dirty_days), so it never gives a figure
-- that differs from v_cost_lines.

CREATE TABLE daily_costs (
    day                   date NOT NULL,
    provider              text NOT NULL,
    billing_account_id    text NOT NULL,
    sub_account_id        text,
    service_name          text NOT NULL,
    service_category      text,
    region_id             text,
    charge_category       text NOT NULL,
    billing_currency      text NOT NULL,
    price_source          text NOT NULL,
    billing_scope         text,
    billing_scope_version bigint,
    lines                 bigint NOT NULL,
    billed_cost           numeric,
    billed_nulls          bigint NOT NULL,
    effective_cost        numeric,
    effective_nulls       bigint NOT NULL,
    list_cost             numeric,
    list_nulls            bigint NOT NULL,
    contracted_cost       numeric,
    contracted_nulls      bigint NOT NULL
);
CREATE INDEX daily_costs_day_idx ON daily_costs (day);

CREATE TABLE dirty_days (
    day       date PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION mark_new_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pricing.dirty_days (day)
    SELECT DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date FROM new_rows
    ON CONFLICT (day) DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION mark_old_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pricing.dirty_days (day)
    SELECT DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date FROM old_rows
    ON CONFLICT (day) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER cost_lines_inserted AFTER INSERT ON cost_lines
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_new_days();
CREATE TRIGGER cost_lines_updated_new AFTER UPDATE ON cost_lines
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_new_days();
CREATE TRIGGER cost_lines_updated_old AFTER UPDATE ON cost_lines
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_old_days();
CREATE TRIGGER cost_lines_deleted AFTER DELETE ON cost_lines
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_old_days();

-- every day already stored is marked: the background refresh builds the aggregate
INSERT INTO dirty_days (day)
SELECT DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date FROM cost_lines
ON CONFLICT (day) DO NOTHING;

-- the same visibility rule as v_cost_lines: a restated scope hides its older versions
CREATE VIEW v_daily_costs AS
SELECT d.day, d.provider, d.billing_account_id, d.sub_account_id, d.service_name, d.service_category,
       d.region_id, d.charge_category, d.billing_currency, d.price_source, d.lines,
       d.billed_cost, d.billed_nulls, d.effective_cost, d.effective_nulls, d.list_cost, d.list_nulls,
       d.contracted_cost, d.contracted_nulls
FROM daily_costs d
LEFT JOIN billing_scopes s ON s.billing_scope = d.billing_scope
WHERE d.billing_scope IS NULL
   OR coalesce(d.billing_scope_version, 0) >= s.latest_version;

CREATE VIEW v_dirty_days AS SELECT day, marked_at FROM dirty_days;
