-- Per day, cost by service and by account (billed, visible lines only): a few dozen rows a
-- day, so an overview of months reads thousands of rows instead of the aggregate's
-- hundreds of thousands. Rebuilt with daily_costs, in the same transaction, for the same
-- marked days (services/pricing/aggregate.py); the billing-scope rule is applied when built
-- (a scope's version change deletes or adds lines, which marks their days).

CREATE TABLE daily_rollups (
    day              date NOT NULL,
    dim              text NOT NULL CHECK (dim IN ('service', 'account')),
    key              text NOT NULL,
    billing_currency text NOT NULL,
    billed_cost      numeric,
    lines            bigint NOT NULL,
    billed_nulls     bigint NOT NULL
);
CREATE INDEX daily_rollups_day_idx ON daily_rollups (day);

-- the days already aggregated get their rollups at the next refresh
INSERT INTO dirty_days (day) SELECT DISTINCT day FROM daily_costs ON CONFLICT (day) DO NOTHING;

CREATE VIEW v_daily_rollups AS
SELECT day, dim, key, billing_currency, billed_cost, lines, billed_nulls FROM daily_rollups;
