-- Anomalies saved but not yet confirmed on the topic: re-published by the next batch, so a
-- broker hiccup after the commit does not lose an anomaly (at-least-once; consumers key on
-- anomaly_id). The cause's traceparent lets a re-publish continue the same trace.
ALTER TABLE anomalies ADD COLUMN pending_publish boolean NOT NULL DEFAULT false;
ALTER TABLE anomalies ADD COLUMN cause_traceparent text;
CREATE INDEX anomalies_pending ON anomalies (detected_at) WHERE pending_publish;
