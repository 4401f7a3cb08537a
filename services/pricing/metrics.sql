-- Sampled by the runtime every FINFOCUS_METRICS_SAMPLE_SECONDS (docs/metrics.md):
-- rows of (series, labels, value). Billed cost of the current UTC month by provider and currency.
SELECT 'finfocus_cost_current_month' AS series,
       jsonb_build_object('provider', provider, 'currency', billing_currency) AS labels,
       sum(billed_cost)::float8 AS value
FROM pricing.v_cost_lines
WHERE charge_period_start >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
  AND charge_period_start < (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
  AND billed_cost IS NOT NULL
GROUP BY provider, billing_currency
