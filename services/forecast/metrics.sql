-- Sampled by the runtime every FINFOCUS_METRICS_SAMPLE_SECONDS (docs/metrics.md):
-- rows of (series, labels, value). Budgets: consumption and projection of the current period.
SELECT 'finfocus_budget_consumption_ratio' AS series,
       jsonb_build_object('budget', name, 'currency', currency) AS labels,
       (actual_to_date / amount)::float8 AS value
FROM forecast.v_budgets WHERE amount > 0 AND actual_to_date IS NOT NULL
UNION ALL
SELECT 'finfocus_budget_projected_ratio', jsonb_build_object('budget', name, 'currency', currency),
       (projected / amount)::float8
FROM forecast.v_budgets WHERE amount > 0 AND projected IS NOT NULL
UNION ALL
SELECT 'finfocus_budget_alerts', jsonb_build_object('kind', kind), count(*)::float8
FROM forecast.budget_alerts GROUP BY kind
UNION ALL
SELECT 'finfocus_forecast_refits', '{}'::jsonb, count(*)::float8 FROM forecast.refits
UNION ALL
(SELECT 'finfocus_forecast_refit_duration_seconds', '{}'::jsonb,
        extract(epoch FROM finished_at - started_at)::float8
 FROM forecast.refits ORDER BY refit_id DESC LIMIT 1)
UNION ALL
(SELECT 'finfocus_forecast_last_refit_timestamp_seconds', '{}'::jsonb, extract(epoch FROM finished_at)::float8
 FROM forecast.refits ORDER BY refit_id DESC LIMIT 1)
