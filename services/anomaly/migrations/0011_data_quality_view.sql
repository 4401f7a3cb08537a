-- Billing delays (a missing day followed by a catch-up) are data-quality events, not cost
-- anomalies: they leave v_anomalies, which the CLI, the API, the console, dashboards and the
-- assistant read as "cost anomalies", and get a view of their own.
CREATE OR REPLACE VIEW v_anomalies AS
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
       a.body AS record,
       f.note AS feedback_note,
       f.actor AS feedback_actor
FROM anomalies a
LEFT JOIN feedback f USING (anomaly_id)
WHERE a.kind IS DISTINCT FROM 'billing-delay';

CREATE OR REPLACE VIEW v_data_quality_events AS
SELECT a.anomaly_id AS event_id,
       a.monitor,
       a.dimension,
       a.currency,
       a.window_start,
       a.window_end,
       a.kind,
       a.first_detected_at,
       a.detected_at
FROM anomalies a
WHERE a.kind = 'billing-delay';
