-- Budgets: set and deleted through `budget-commands`; evaluated after every refit.

CREATE TABLE budgets (
    name        text PRIMARY KEY,
    amount      numeric,
    currency    text,
    period      text NOT NULL DEFAULT 'monthly',
    scope       jsonb NOT NULL DEFAULT '{}'::jsonb,
    thresholds  jsonb NOT NULL DEFAULT '[]'::jsonb,
    deleted     boolean NOT NULL DEFAULT false,   -- tombstone: an older, redelivered set loses
    issued_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE budget_status (
    name               text PRIMARY KEY REFERENCES budgets (name) ON DELETE CASCADE,
    period_start       date NOT NULL,
    period_end         date NOT NULL,
    trained_through    date NOT NULL,
    actual_to_date     numeric NOT NULL,
    forecast_remainder numeric NOT NULL,
    projected          numeric NOT NULL,
    lo_95              numeric NOT NULL,
    hi_95              numeric NOT NULL,
    evaluated_at       timestamptz NOT NULL DEFAULT now()
);

-- one row per (budget, period, threshold): the alert is raised once
CREATE TABLE budget_alerts (
    alert_id     text PRIMARY KEY,
    name         text NOT NULL,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    kind         text NOT NULL,
    percent      numeric NOT NULL,
    limit_amount numeric NOT NULL,
    spend        numeric NOT NULL,
    raised_at    timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW v_budgets AS
SELECT b.name, b.amount, b.currency, b.period, b.scope, b.thresholds, b.updated_at,
       s.period_start, s.period_end, s.trained_through, s.actual_to_date, s.forecast_remainder,
       s.projected, s.lo_95, s.hi_95, s.evaluated_at,
       (SELECT count(*) FROM budget_alerts a
         WHERE a.name = b.name AND a.period_start = s.period_start) AS alerts_this_period
FROM budgets b LEFT JOIN budget_status s USING (name)
WHERE NOT b.deleted;

CREATE VIEW v_budget_alerts AS
SELECT alert_id, name, period_start, period_end, kind, percent, limit_amount, spend, raised_at
FROM budget_alerts;
