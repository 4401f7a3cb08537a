-- The model each series won in cross-validation, reused by daily refits until it is due
-- for re-selection (FINFOCUS_FORECAST_RESELECT_DAYS).
CREATE TABLE model_choices (
    series_key       text PRIMARY KEY,
    model            text NOT NULL,
    cv_error         double precision NOT NULL,
    widen_80         double precision NOT NULL,
    widen_95         double precision NOT NULL,
    selected_through date NOT NULL,
    selected_at      timestamptz NOT NULL DEFAULT now()
);
