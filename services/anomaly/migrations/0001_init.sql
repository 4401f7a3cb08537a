-- Cost lines as the anomaly service keeps them: one row per priced record (x_RecordId),
-- so a redelivered record replaces itself instead of counting twice.
CREATE TABLE cost_lines (
    record_id text PRIMARY KEY,
    provider text NOT NULL,
    billing_account_id text NOT NULL,
    account text NOT NULL,                 -- SubAccountId, or BillingAccountId when absent
    service_name text NOT NULL,
    service_category text,
    region_id text,
    sku_id text,
    resource_id text,
    resource_type text,
    charge_category text,
    charge_frequency text,
    recurring boolean NOT NULL DEFAULT false,
    tags jsonb NOT NULL DEFAULT '{}'::jsonb,
    currency text NOT NULL,
    day date NOT NULL,                     -- UTC day of ChargePeriodStart
    period_end timestamptz NOT NULL,
    cost numeric NOT NULL,                 -- BilledCost; 0 when unpriced
    priced boolean NOT NULL,
    billing_scope text,
    billing_scope_version bigint,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cost_lines_series ON cost_lines (provider, account, service_name, day);
CREATE INDEX cost_lines_day ON cost_lines (day);

-- Highest version seen of each billing scope: only its rows count (restated bills).
CREATE TABLE scope_versions (
    billing_scope text PRIMARY KEY,
    version bigint NOT NULL
);

CREATE VIEW live_lines AS
SELECT l.*
FROM cost_lines l
LEFT JOIN scope_versions s ON s.billing_scope = l.billing_scope
WHERE l.billing_scope IS NULL OR l.billing_scope_version = s.version;

CREATE TABLE anomalies (
    anomaly_id text PRIMARY KEY,
    monitor text NOT NULL,
    series_key text NOT NULL,
    dimension jsonb NOT NULL,
    currency text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    expected_cost numeric NOT NULL,
    actual_cost numeric NOT NULL,
    impact numeric NOT NULL,
    severity text NOT NULL,
    status text NOT NULL,
    detector text NOT NULL,
    kind text NOT NULL,                    -- spike or level-shift
    first_detected_at timestamptz NOT NULL,
    detected_at timestamptz NOT NULL,
    body jsonb NOT NULL                    -- the AnomalyV1 last published
);
CREATE INDEX anomalies_series ON anomalies (monitor, series_key);
CREATE INDEX anomalies_detected ON anomalies (detected_at);

-- Feedback from people: yes (a real anomaly), no (a false alarm), planned (expected spend).
CREATE TABLE feedback (
    anomaly_id text PRIMARY KEY,
    verdict text NOT NULL CHECK (verdict IN ('yes', 'no', 'planned')),
    note text,
    given_at timestamptz NOT NULL
);

-- Read contract: the CLI (`finfocus anomalies list`) and the demo read this view only.
CREATE VIEW v_anomalies AS
SELECT a.anomaly_id,
       a.monitor,
       a.dimension,
       a.currency,
       a.window_start,
       a.window_end,
       a.expected_cost,
       a.actual_cost,
       a.impact,
       a.severity,
       a.status,
       a.detector,
       a.kind,
       a.first_detected_at,
       a.detected_at,
       f.verdict AS feedback,
       a.body AS record
FROM anomalies a
LEFT JOIN feedback f USING (anomaly_id);
