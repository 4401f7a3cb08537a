-- Sampled by the runtime every FINFOCUS_METRICS_SAMPLE_SECONDS (docs/metrics.md):
-- rows of (series, labels, value). Commands by status; unpublished commands and recommendations;
-- the last periodic analysis (how long it took, when it finished: a stalled leader shows here).
SELECT 'finfocus_remediation_commands' AS series, jsonb_build_object('status', status) AS labels,
       count(*)::float8 AS value
FROM remediation.v_actions GROUP BY status
UNION ALL
SELECT 'finfocus_outbox_backlog', '{"service": "remediation", "outbox": "commands"}'::jsonb, count(*)::float8
FROM remediation.commands WHERE published_at IS NULL
UNION ALL
SELECT 'finfocus_outbox_backlog', '{"service": "remediation", "outbox": "recommendations"}'::jsonb,
       count(*)::float8
FROM remediation.recommendations WHERE published_at IS NULL AND state = 'open'
UNION ALL
(SELECT 'finfocus_remediation_analysis_duration_seconds', '{}'::jsonb,
        extract(epoch FROM finished_at - started_at)::float8
 FROM remediation.analysis_runs ORDER BY run_id DESC LIMIT 1)
UNION ALL
(SELECT 'finfocus_remediation_last_analysis_timestamp_seconds', '{}'::jsonb,
        extract(epoch FROM finished_at)::float8
 FROM remediation.analysis_runs ORDER BY run_id DESC LIMIT 1)
