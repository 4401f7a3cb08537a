-- The feedback note and who gave it, readable through the view (`finfocus anomalies show`
-- prints them); columns appended, so readers of the earlier columns are unaffected.
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
LEFT JOIN feedback f USING (anomaly_id);
