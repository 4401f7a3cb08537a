"""FinFocus's Grafana dashboards as code: `python deploy/grafana/generate.py` writes
deploy/grafana/dashboards/*.json, `--check` exits 1 when the committed JSON differs.

Plain dictionaries in Grafana's dashboard JSON model (schemaVersion 39), no library: the
dashboards use few panel kinds and the model is stable. Data sources are referred to by the
uids of deploy/grafana/provisioning/datasources/finfocus.yaml. PromQL uses the series of
docs/metrics.md; SQL reads only the services' `v_*` views (the read-only role's grants) with
Grafana's `$__timeFilter(column)` macro. tests/unit/deploy/test_grafana.py parses every
PromQL expression; tests/integration/test_grafana_sql.py runs every SQL query as
finfocus_reader on migrated schemas.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "finfocus-prometheus"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "finfocus-postgres"}
LOKI = {"type": "loki", "uid": "finfocus-loki"}
RATE = "$__rate_interval"
SVC = 'service=~"$service"'

Panel = dict[str, Any]


def prom(title: str, *queries: tuple[str, str], unit: str = "short", kind: str = "timeseries",
         width: int = 12, height: int = 8, description: str = "") -> Panel:
    """A panel of PromQL `queries` (expression, legend)."""
    return {
        "type": kind, "title": title, "description": description, "datasource": PROMETHEUS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend,
             "range": kind != "table", "instant": kind == "table"}
            for i, (expr, legend) in enumerate(queries)
        ],
        "_size": (width, height),
    }


def sql(title: str, *queries: str, kind: str = "table", unit: str = "short", width: int = 12,
        height: int = 8, description: str = "") -> Panel:
    """A panel of SQL `queries` over the v_* views (time series: columns time, metric, value)."""
    fmt = "time_series" if kind == "timeseries" else "table"
    return {
        "type": kind, "title": title, "description": description, "datasource": POSTGRES,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "datasource": POSTGRES, "editorMode": "code", "format": fmt,
             "rawQuery": True, "rawSql": " ".join(q.split())}
            for i, q in enumerate(queries)
        ],
        "_size": (width, height),
    }


def logs(title: str, expr: str, width: int = 24, height: int = 10) -> Panel:
    return {
        "type": "logs", "title": title, "datasource": LOKI,
        "options": {"showTime": True, "wrapLogMessage": True, "enableLogDetails": True},
        "targets": [{"refId": "A", "datasource": LOKI, "expr": expr}],
        "_size": (width, height),
    }


def service_variable() -> dict[str, Any]:
    return {
        "name": "service", "label": "service", "type": "query", "datasource": PROMETHEUS,
        "query": {"query": "label_values(finfocus_service_info, service)", "refId": "service"},
        "definition": "label_values(finfocus_service_info, service)",
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel], *,
              time_from: str = "now-24h", time_to: str = "now",
              variables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The dashboard JSON, panels laid out left to right on Grafana's 24-column grid."""
    laid: list[Panel] = []
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        panel = dict(panel)
        width, height = panel.pop("_size")
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        panel["id"] = number
        panel["gridPos"] = {"x": x, "y": y, "w": width, "h": height}
        x += width
        row_height = max(row_height, height)
        laid.append(panel)
    return {
        "uid": uid, "title": title, "description": description, "tags": ["finfocus"],
        "editable": False, "schemaVersion": 39, "version": 1, "refresh": "1m",
        "time": {"from": time_from, "to": time_to}, "timezone": "utc",
        "templating": {"list": variables or []}, "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["finfocus"], "asDropdown": True, "title": "FinFocus"}],
        "panels": laid,
    }


def pipeline() -> dict[str, Any]:
    return dashboard(
        "finfocus-pipeline", "FinFocus / Pipeline health",
        "Lag, throughput, dead letters and latency per service (docs/metrics.md)",
        [
            prom("Services up", (f"up{{job=\"finfocus\", {SVC}}}", "{{service}}"), kind="stat", width=8, height=4),
            prom("Ready", (f"finfocus_ready{{{SVC}}}", "{{service}}"), kind="stat", width=8, height=4),
            prom("Stalled partitions", (f"sum by (service) (finfocus_consumer_stalled{{{SVC}}})", "{{service}}"),
                 kind="stat", width=8, height=4),
            prom("Consumer lag", (f"sum by (service, topic) (finfocus_consumer_lag{{{SVC}}})", "{{service}} {{topic}}"),
                 description="Records not yet committed, per consumer and topic"),
            prom("Throughput", (f"sum by (service, topic, outcome) (rate(finfocus_records_total{{{SVC}}}[{RATE}]))",
                                "{{service}} {{topic}} {{outcome}}"), unit="rps"),
            prom("Dead letters", (f"sum by (service, topic, reason) (increase(finfocus_dead_letters_total{{{SVC}}}[1h]))",
                                  "{{topic}} {{reason}}"),
                 description="Records sent to <topic>.dlq in the last hour, by reason class"),
            prom("Retrying partitions", (f"sum by (service, topic) (finfocus_consumer_retrying{{{SVC}}})",
                                         "{{service}} {{topic}}")),
            prom("Batch latency p95",
                 (f"histogram_quantile(0.95, sum by (service, le) (rate(finfocus_batch_duration_seconds_bucket{{{SVC}}}[{RATE}])))",
                  "{{service}}"), unit="s", description="Receipt to offsets committed"),
            prom("Database write latency p95",
                 (f"histogram_quantile(0.95, sum by (service, le) (rate(finfocus_db_write_duration_seconds_bucket{{{SVC}}}[{RATE}])))",
                  "{{service}}"), unit="s"),
            prom("Outbox backlog", ("sum by (service, outbox) (finfocus_outbox_backlog)", "{{service}} {{outbox}}")),
            prom("Ingest rows", ("sum by (outcome) (increase(finfocus_ingest_rows_total[1h]))", "{{outcome}}"),
                 description="Rows of import jobs per hour: read, published, rejected"),
            prom("Import jobs by status", ("sum by (status) (finfocus_ingest_jobs)", "{{status}}"), width=8),
            prom("Last import duration", ("finfocus_ingest_last_job_duration_seconds", "seconds"), unit="s",
                 kind="stat", width=8),
            prom("Last forecast refit", ("finfocus_forecast_refit_duration_seconds", "seconds"), unit="s",
                 kind="stat", width=8),
            prom("Memory", (f"process_resident_memory_bytes{{job=\"finfocus\", {SVC}}}", "{{service}}"), unit="bytes"),
            prom("CPU", (f"rate(process_cpu_seconds_total{{job=\"finfocus\", {SVC}}}[{RATE}])", "{{service}}"),
                 unit="percentunit"),
            logs("Errors and warnings", '{service=~"$service"} | json | level=~"error|warning"'),
        ],
        variables=[service_variable()],
    )


def costs() -> dict[str, Any]:
    return dashboard(
        "finfocus-costs", "FinFocus / Cost overview",
        "Billed cost from pricing's views (never added across currencies)",
        [
            sql("Billed cost in range",
                """SELECT billing_currency AS currency, sum(billed_cost) AS billed_cost, sum(lines) AS lines
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day) GROUP BY billing_currency ORDER BY 1""",
                kind="table", width=8, height=6),
            prom("Current month (sampled)", ("sum by (provider, currency) (finfocus_cost_current_month)",
                                             "{{provider}} {{currency}}"), kind="stat", width=8, height=6),
            sql("Unpriced lines",
                """SELECT count(*) AS unpriced FROM pricing.v_cost_lines
                   WHERE price_source = 'none' AND $__timeFilter(charge_period_start)""",
                kind="stat", width=8, height=6, description="Lines no plugin or spec could price"),
            sql("Daily cost by provider",
                """SELECT day::timestamptz AS time, provider || ' ' || billing_currency AS metric,
                          sum(billed_cost) AS value
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day)
                   GROUP BY day, provider, billing_currency ORDER BY 1""",
                kind="timeseries", width=24),
            sql("Top services",
                """SELECT provider, service_name, billing_currency AS currency, sum(billed_cost) AS billed_cost
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day)
                   GROUP BY provider, service_name, billing_currency ORDER BY billed_cost DESC NULLS LAST LIMIT 20"""),
            sql("Top accounts",
                """SELECT provider, sub_account_id, billing_currency AS currency, sum(billed_cost) AS billed_cost
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day)
                   GROUP BY provider, sub_account_id, billing_currency ORDER BY billed_cost DESC NULLS LAST LIMIT 20"""),
            sql("Cost by region",
                """SELECT coalesce(region_id, '(none)') AS region, billing_currency AS currency,
                          sum(billed_cost) AS billed_cost
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day)
                   GROUP BY 1, billing_currency ORDER BY billed_cost DESC NULLS LAST LIMIT 20"""),
            sql("Cost by charge category",
                """SELECT charge_category, billing_currency AS currency, sum(billed_cost) AS billed_cost
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day)
                   GROUP BY charge_category, billing_currency ORDER BY 1"""),
            sql("Top resources",
                """SELECT provider, resource_id, resource_type, billing_currency AS currency,
                          sum(billed_cost) AS billed_cost
                   FROM pricing.v_cost_lines WHERE $__timeFilter(charge_period_start) AND resource_id IS NOT NULL
                   GROUP BY provider, resource_id, resource_type, billing_currency
                   ORDER BY billed_cost DESC NULLS LAST LIMIT 25""", width=24),
        ],
        time_from="now-30d",
    )


def anomalies() -> dict[str, Any]:
    return dashboard(
        "finfocus-anomalies", "FinFocus / Anomalies", "Detected cost anomalies (anomaly.v_anomalies)",
        [
            prom("Anomalies per day", ("sum by (severity) (increase(finfocus_anomalies_total[1d]))", "{{severity}}"),
                 width=12),
            sql("Open anomalies by severity",
                """SELECT severity, currency, count(*) AS anomalies, sum(impact) AS impact
                   FROM anomaly.v_anomalies WHERE status = 'open' GROUP BY severity, currency ORDER BY 1""",
                width=12),
            sql("Detected per day",
                """SELECT date_trunc('day', detected_at) AS time, severity AS metric, count(*) AS value
                   FROM anomaly.v_anomalies WHERE $__timeFilter(detected_at)
                   GROUP BY 1, severity ORDER BY 1""", kind="timeseries", width=24),
            sql("Recent anomalies",
                """SELECT detected_at, severity, status, detector, dimension::text AS dimension, currency,
                          expected_cost, actual_cost, impact, feedback
                   FROM anomaly.v_anomalies WHERE $__timeFilter(detected_at)
                   ORDER BY detected_at DESC LIMIT 100""", width=24, height=12),
            sql("Alert deliveries",
                """SELECT status, count(*) AS deliveries FROM anomaly.v_alert_deliveries GROUP BY status ORDER BY 1""",
                width=12),
            sql("Feedback",
                """SELECT coalesce(feedback, '(none)') AS feedback, count(*) AS anomalies
                   FROM anomaly.v_anomalies WHERE $__timeFilter(detected_at) GROUP BY 1 ORDER BY 2 DESC""",
                width=12),
        ],
        time_from="now-30d",
    )


def budgets() -> dict[str, Any]:
    coarsest = "(SELECT dims FROM forecast.v_forecasts ORDER BY length(dims), dims LIMIT 1)"
    return dashboard(
        "finfocus-forecast-budgets", "FinFocus / Forecast vs budget",
        "Budgets, their consumption and the forecast's projection (forecast.v_budgets, v_forecasts)",
        [
            prom("Budget consumed", ("finfocus_budget_consumption_ratio", "{{budget}} ({{currency}})"),
                 unit="percentunit", kind="bargauge", width=12),
            prom("Budget projected at period end", ("finfocus_budget_projected_ratio", "{{budget}} ({{currency}})"),
                 unit="percentunit", kind="bargauge", width=12),
            sql("Budgets",
                """SELECT name, period, currency, amount, actual_to_date, projected, lo_95, hi_95,
                          round(100 * actual_to_date / nullif(amount, 0), 1) AS consumed_pct,
                          round(100 * projected / nullif(amount, 0), 1) AS projected_pct,
                          alerts_this_period, evaluated_at
                   FROM forecast.v_budgets ORDER BY projected_pct DESC NULLS LAST""", width=24),
            sql("Actual and forecast per day",
                """SELECT day::timestamptz AS time, billing_currency || ' actual' AS metric, sum(billed_cost) AS value
                   FROM pricing.v_daily_costs WHERE $__timeFilter(day) GROUP BY day, billing_currency ORDER BY 1""",
                f"""SELECT day::timestamptz AS time, currency || ' forecast' AS metric, sum(mean) AS value
                   FROM forecast.v_forecasts WHERE dims = {coarsest} AND $__timeFilter(day)
                   GROUP BY day, currency ORDER BY 1""",
                f"""SELECT day::timestamptz AS time, currency || ' forecast hi 95' AS metric, sum(hi_95) AS value
                   FROM forecast.v_forecasts WHERE dims = {coarsest} AND $__timeFilter(day)
                   GROUP BY day, currency ORDER BY 1""",
                kind="timeseries", width=24, height=10),
            sql("Month-end projections",
                f"""SELECT "group"::text AS series, currency, model, trained_through, actual_to_date, projected,
                           lo_95, hi_95
                    FROM forecast.v_month_end WHERE dims = {coarsest}
                    ORDER BY projected DESC NULLS LAST LIMIT 25"""),
            sql("Budget alerts",
                """SELECT raised_at, name, kind, percent, limit_amount, spend
                   FROM forecast.v_budget_alerts WHERE $__timeFilter(raised_at) ORDER BY raised_at DESC LIMIT 50"""),
        ],
        time_from="now-30d", time_to="now+30d",
    )


def remediation() -> dict[str, Any]:
    return dashboard(
        "finfocus-remediation", "FinFocus / Remediation and savings",
        "Commands, recommendations and realised savings (remediation.v_actions, v_recommendations, v_savings)",
        [
            prom("Commands by status", ("sum by (status) (finfocus_remediation_commands)", "{{status}}"),
                 kind="bargauge", width=12),
            sql("Savings",
                """SELECT currency, count(*) AS commands, sum(expected_monthly) AS expected_monthly,
                          sum(realised_monthly) AS realised_monthly
                   FROM remediation.v_savings GROUP BY currency ORDER BY 1""", width=12),
            sql("Commands by status and action",
                """SELECT status, action, currency, count(*) AS commands,
                          sum(expected_monthly_savings) AS expected_monthly_savings
                   FROM remediation.v_actions WHERE $__timeFilter(issued_at)
                   GROUP BY status, action, currency ORDER BY status, action"""),
            sql("Open recommendations",
                """SELECT type, action, currency, count(*) AS recommendations,
                          sum(estimated_monthly_savings) AS estimated_monthly_savings
                   FROM remediation.v_recommendations WHERE state = 'open'
                   GROUP BY type, action, currency ORDER BY estimated_monthly_savings DESC NULLS LAST"""),
            sql("Recent commands",
                """SELECT issued_at, action, provider, resource_id, mode, status, expected_monthly_savings,
                          currency, decided_by, executed_at
                   FROM remediation.v_actions WHERE $__timeFilter(issued_at)
                   ORDER BY issued_at DESC LIMIT 100""", width=24, height=12),
            sql("Realised savings per command",
                """SELECT executed_at, action, resource_id, baseline_daily, after_daily, expected_monthly,
                          realised_monthly, currency
                   FROM remediation.v_savings ORDER BY executed_at DESC NULLS LAST LIMIT 50""", width=24),
        ],
        time_from="now-30d",
    )


def plugins() -> dict[str, Any]:
    return dashboard(
        "finfocus-plugins", "FinFocus / Pricing plugins",
        "Plugin calls, failures and circuits (pricing), and where prices came from",
        [
            prom("Circuit open", ("max by (plugin) (finfocus_plugin_circuit_open)", "{{plugin}}"), kind="stat",
                 width=8),
            prom("Failures in the last hour", ("sum by (plugin) (increase(finfocus_plugin_failures_total[1h]))",
                                               "{{plugin}}"), kind="stat", width=8),
            prom("Calls per second", (f"sum by (plugin, method) (rate(finfocus_plugin_call_duration_seconds_count[{RATE}]))",
                                      "{{plugin}} {{method}}"), unit="reqps", width=8),
            prom("Call latency p95",
                 (f"histogram_quantile(0.95, sum by (plugin, le) (rate(finfocus_plugin_call_duration_seconds_bucket[{RATE}])))",
                  "{{plugin}}"), unit="s", width=12),
            prom("Call latency p50",
                 (f"histogram_quantile(0.5, sum by (plugin, le) (rate(finfocus_plugin_call_duration_seconds_bucket[{RATE}])))",
                  "{{plugin}}"), unit="s", width=12),
            sql("Plugin health (pricing)",
                """SELECT plugin, state, calls, failures, cache_hits, restarts, last_error, updated_at
                   FROM pricing.v_plugin_health ORDER BY plugin""", width=24),
            sql("Lines by price source",
                """SELECT price_source, sum(lines) AS lines FROM pricing.v_daily_costs
                   WHERE $__timeFilter(day) GROUP BY price_source ORDER BY lines DESC""", width=24),
        ],
        time_from="now-24h",
    )


DASHBOARDS = {
    "pipeline-health.json": pipeline,
    "cost-overview.json": costs,
    "anomalies.json": anomalies,
    "forecast-budgets.json": budgets,
    "remediation-savings.json": remediation,
    "plugins.json": plugins,
}


def render() -> dict[str, str]:
    """file name -> the dashboard's JSON text, as committed."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        stale = [n for n, text in rendered.items() if not (OUT / n).is_file() or (OUT / n).read_text() != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in rendered)
        for name in stale + extra:
            print(f"deploy/grafana/dashboards/{name} differs from generate.py: run it", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
