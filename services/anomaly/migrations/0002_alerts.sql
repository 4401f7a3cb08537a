-- Alert deliveries (an outbox): one row per subscription, anomaly and severity, so an ongoing
-- anomaly alerts once and again only when it escalates. A worker sends due rows with retries.
CREATE TABLE alert_deliveries (
    subscription text NOT NULL,
    anomaly_id text NOT NULL,
    severity text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('immediate', 'digest')),
    anomaly jsonb NOT NULL,                -- the AnomalyV1 that triggered it
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription, anomaly_id, severity)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE VIEW v_alert_deliveries AS
SELECT subscription, anomaly_id, severity, mode, status, attempts, last_error, sent_at, created_at
FROM alert_deliveries;
