-- Sampled by the runtime every FINFOCUS_METRICS_SAMPLE_SECONDS (docs/metrics.md):
-- rows of (series, labels, value). Anomalies by severity; the two outboxes' backlogs.
SELECT 'finfocus_anomalies' AS series, jsonb_build_object('severity', severity) AS labels,
       count(*)::float8 AS value
FROM anomaly.anomalies GROUP BY severity
UNION ALL
SELECT 'finfocus_outbox_backlog', '{"service": "anomaly", "outbox": "anomalies"}'::jsonb, count(*)::float8
FROM anomaly.anomalies WHERE pending_publish
UNION ALL
SELECT 'finfocus_outbox_backlog', '{"service": "anomaly", "outbox": "alert_deliveries"}'::jsonb, count(*)::float8
FROM anomaly.alert_deliveries WHERE status = 'pending'
