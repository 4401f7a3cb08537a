-- Forecast service: its own copy of daily costs (one row per priced record, so redelivery
-- is idempotent), the forecasts it fits and the budgets it watches.

CREATE TABLE cost_lines (
    record_id        text PRIMARY KEY,
    provider         text NOT NULL,
    account          text NOT NULL,
    service          text NOT NULL,
    region           text,
    resource         text,
    type             text,
    currency         text NOT NULL,
    day              date NOT NULL,
    cost             numeric,             -- NULL: x_PriceSource = none, no cost
    recurring        boolean NOT NULL DEFAULT false,
    billing_scope    text,
    scope_version    bigint,
    tags             jsonb NOT NULL DEFAULT '{}'::jsonb,
    stored_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cost_lines_scope ON cost_lines (billing_scope, scope_version);
CREATE INDEX cost_lines_day ON cost_lines (day);

-- highest version seen per billing scope: older versions are deleted and refused
CREATE TABLE scope_versions (
    billing_scope text PRIMARY KEY,
    version       bigint NOT NULL
);

CREATE TABLE series_forecasts (
    series_id       bigserial PRIMARY KEY,
    series_key      text NOT NULL UNIQUE,
    dims            text NOT NULL,
    grp             jsonb NOT NULL,
    currency        text NOT NULL,
    model           text NOT NULL,
    trained_through date NOT NULL,
    cv_error        numeric,               -- MASE of the chosen model in rolling-origin CV
    fingerprint     text NOT NULL,
    fitted_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX series_forecasts_dims ON series_forecasts (dims);

CREATE TABLE forecast_points (
    series_id bigint NOT NULL REFERENCES series_forecasts (series_id) ON DELETE CASCADE,
    day       date NOT NULL,
    mean      numeric NOT NULL,
    lo_80     numeric NOT NULL,
    hi_80     numeric NOT NULL,
    lo_95     numeric NOT NULL,
    hi_95     numeric NOT NULL,
    PRIMARY KEY (series_id, day)
);

CREATE TABLE projections (
    series_id          bigint NOT NULL REFERENCES series_forecasts (series_id) ON DELETE CASCADE,
    period_start       date NOT NULL,
    period_end         date NOT NULL,
    actual_to_date     numeric NOT NULL,
    forecast_remainder numeric NOT NULL,
    projected          numeric NOT NULL,
    lo_95              numeric NOT NULL,
    hi_95              numeric NOT NULL,
    PRIMARY KEY (series_id, period_start)
);

CREATE TABLE refits (
    refit_id      bigserial PRIMARY KEY,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    series_total  integer NOT NULL,
    series_fitted integer NOT NULL,
    reason        text NOT NULL
);

CREATE VIEW v_forecasts AS
SELECT f.series_key, f.dims, f.grp AS "group", f.currency, f.model, f.trained_through,
       f.cv_error, f.fitted_at, p.day, p.mean, p.lo_80, p.hi_80, p.lo_95, p.hi_95
FROM series_forecasts f JOIN forecast_points p USING (series_id);

CREATE VIEW v_month_end AS
SELECT f.series_key, f.dims, f.grp AS "group", f.currency, f.model, f.trained_through,
       j.period_start, j.period_end, j.actual_to_date, j.forecast_remainder, j.projected,
       j.lo_95, j.hi_95
FROM series_forecasts f JOIN projections j USING (series_id);

CREATE VIEW v_refits AS SELECT * FROM refits;
