-- Sampled by the runtime every FINFOCUS_METRICS_SAMPLE_SECONDS (docs/metrics.md):
-- rows of (series, labels, value). Import jobs by status (abandoned included), their rows,
-- the duration of the last finished one.
SELECT 'finfocus_ingest_jobs' AS series, jsonb_build_object('status', status) AS labels,
       count(*)::float8 AS value
FROM ingest.v_import_jobs GROUP BY status
UNION ALL
SELECT 'finfocus_ingest_rows', jsonb_build_object('outcome', o.outcome), o.n::float8
FROM (SELECT coalesce(sum(rows_read), 0) AS read, coalesce(sum(rows_published), 0) AS published,
             coalesce(sum(rows_rejected), 0) AS rejected FROM ingest.import_jobs) t,
     LATERAL (VALUES ('read', t.read), ('published', t.published), ('rejected', t.rejected)) AS o(outcome, n)
UNION ALL
(SELECT 'finfocus_ingest_last_job_duration_seconds', '{}'::jsonb,
        extract(epoch FROM finished_at - started_at)::float8
 FROM ingest.import_jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1)
