"""Every command's table rendered at 80, 100 and 160 columns, compared with committed snapshots.

Readable means: ids and money never cut, columns that matter kept, long text shortened (the
`show` command or `--wide` has it whole), money to the cent, no Python reprs, "1 anomaly".
Regenerate after an intended change with FINFOCUS_UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import finfocus.cli.output as output
from finfocus.cli import app

SNAPSHOTS = Path(__file__).parent / "snapshots"
WIDTHS = (80, 100, 160)

ANOMALY_ID = "anm-112c9d0e4f5a6b7c8d9e0f1a2b3c4d5e"
COMMAND_ID = "cmd-7f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
ARN = "arn:aws:ec2:us-east-1:210987654321:instance/i-07c6d4e0f3a5b1829"
REASON = ("Anomaly anm-112c9d0e4f5a6b7c8d9e0f1a2b3c4d5e: EC2 cost rose from 20.12 to 972.66 a day after "
          "the instance was resized to c5.24xlarge; stopping it saves about 2,918.00 a month.")


def anomaly(i: int, impact: str) -> dict:
    return {
        "anomaly_id": ANOMALY_ID if i == 0 else f"anm-{i:032x}", "detected_at": "2026-12-01T06:00:00Z",
        "window_start": "2026-11-28T00:00:00Z", "window_end": "2026-12-01T00:00:00Z",
        "dimension": {"ProviderName": "AWS", "SubAccountId": "210987654321",
                      "ServiceName": "Amazon Elastic Compute Cloud"},
        "expected_cost": "60.3600", "actual_cost": "2992.5772000000", "impact": impact, "impact_pct": "4857.8",
        "currency": "USD", "severity": "critical", "score": 41.2, "detector": "seasonal-mad",
        "root_causes": [{"dimension": {"ResourceId": ARN}, "contribution": "2918.0012"}], "status": "open",
    }


def forecast(group: dict, mean: str) -> dict:
    m = Decimal(mean)
    return {"group": group, "model": "DynamicOptimizedTheta", "trained_through": "2026-12-01", "currency": "USD",
            "points": [{"date": f"2026-12-{d:02d}", "mean": str(m + d % 7), "lo_80": str(m - 2), "hi_80": str(m + 9),
                        "lo_95": str(m - 4), "hi_95": str(m + 11)} for d in range(2, 32)]}


async def _return(value):
    return value


FIXTURES = {
    "forecast_show": (["forecast", "show", "-g", "provider,service"], {
        "services.forecast.cli.forecast.load": lambda *a: _return([
            forecast({"provider": "Google Cloud", "service": "BigQuery"}, "8.13"),
            forecast({"provider": "AWS", "service": "Amazon Elastic Compute Cloud"}, "32.68"),
            forecast({"provider": "Microsoft", "service": None}, "0.5"),
        ])}),
    "forecast_month_end": (["forecast", "month-end", "-g", "service"], {
        "services.forecast.cli.forecast.load_month_end": lambda *a: _return([
            {"group": {"service": s}, "currency": "USD", "period_start": "2026-12-01", "period_end": "2027-01-01",
             "trained_through": "2026-12-01", "actual_to_date": a, "forecast_remainder": r, "projected": p,
             "lo_95": lo, "hi_95": hi}
            for s, a, r, p, lo, hi in [("Amazon Elastic Compute Cloud", "32.68", "980.28", "1012.96", "990.10",
                                        "1035.11"), ("BigQuery", "8.13", "244.04", "252.17", "221.57", "284.14")]
        ])}),
    "anomalies_list": (["anomalies", "list"], {
        "services.anomaly.cli.fetch_anomalies": lambda *a: _return([anomaly(0, "2932.2172000000")])}),
    "anomalies_list_many": (["anomalies", "list"], {
        "services.anomaly.cli.fetch_anomalies": lambda *a: _return([anomaly(0, "2932.21"), anomaly(1, "12.5")])}),
    "remediation_list": (["remediation", "list"], {
        "services.remediation.cli._list_commands": lambda *a: _return([
            {"command_id": COMMAND_ID, "status": "pending-approval", "action": "stop-instance",
             "target": {"resource_id": "i-07c6d4e0f3a5b1829"}, "mode": "execute", "playbook": "stop-idle-spikes",
             "expected_monthly_savings": "2918.004500", "reason": {"text": REASON}, "result": None},
            {"command_id": "cmd-00aa", "status": "executed", "action": "release-address",
             "target": {"resource_id": "eipalloc-0abc"}, "mode": "dry-run", "playbook": None,
             "expected_monthly_savings": "3.65", "reason": {"text": "idle"}, "result": {"status": "ok", "dry_run": True}},
        ])}),
    "remediation_audit": (["remediation", "audit"], {
        "services.remediation.cli._audit": lambda *a: _return([
            {"at": datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "command_id": COMMAND_ID, "event": "executed",
             "actor": "cli:alice", "reason": REASON, "result": {"status": "ok", "dry_run": True}},
        ])}),
    "recommendations_list": (["recommendations", "list"], {
        "services.remediation.cli._recommendations": lambda *a: _return([
            {"recommendation_id": "rec-5d41402abc4b2a76b9719d911017c592", "type": "rightsize-instance",
             "resource_id": ARN, "account_id": "210987654321", "estimated_monthly_savings": Decimal("1459.0022500"),
             "currency": "USD", "action": "resize-instance", "state": "open", "rationale": REASON},
        ])}),
    "savings_report": (["savings", "report"], {
        "services.remediation.cli._savings": lambda *a: _return([
            {"playbook": "stop-idle", "account_id": "210987654321", "action": "stop-instance", "currency": "USD",
             "expected_monthly": Decimal("150.00"), "realised_monthly": None},
            {"playbook": "release", "account_id": "210987654321", "action": "release-address", "currency": "USD",
             "expected_monthly": Decimal("3.65"), "realised_monthly": Decimal("3.6512")},
        ])}),
    "ingest_show": (["ingest", "show", "job-1"], {
        "services.ingest.cli.ingest._jobs": lambda *a: _return([
            {"job_id": "job-1", "version": 2, "status": "done", "format": "focus", "rows_read": 5400,
             "rows_published": 5400, "rows_rejected": 0, "totals": {"USD": Decimal("5843.6700000000")},
             "scopes": [{"scope": "AWS:210987654321:2026-11", "version": 2}], "strict": False,
             "result": {"status": "ok", "replaced": True}, "finished_at": datetime(2026, 12, 1, 6, tzinfo=UTC)},
        ])}),
    "catalog_show": (["catalog", "show"], {
        "services.pricing.cli.catalog._show": lambda *a: _return([
            {"provider": "AWS", "service": "Amazon Elastic Compute Cloud", "sku": "BoxUsage:c5.24xlarge",
             "region": "us-east-1", "unit": "Hrs", "unit_price": Decimal("4.0800000000"), "currency": "USD",
             "effective_from": datetime(2026, 1, 1, tzinfo=UTC), "effective_to": None, "source": "plugin:aws-public"},
            {"provider": "AWS", "service": "AWS Lambda", "sku": "AWS-Lambda-Duration", "region": "us-east-1",
             "unit": "GB-Seconds", "unit_price": Decimal("0.0000166667"), "currency": "USD",
             "effective_from": datetime(2026, 1, 1, tzinfo=UTC), "effective_to": None, "source": "spec:lambda.yaml"},
        ])}),
    "budget_alerts": (["budget", "alerts"], {
        "services.forecast.cli.budget._alerts": lambda *a: _return([
            {"alert_id": "bud-prod-2026-12-80-projected", "name": "prod", "period_start": date(2026, 12, 1),
             "period_end": date(2027, 1, 1), "kind": "projected", "percent": Decimal("80"),
             "limit_amount": Decimal("2400.000"), "spend": Decimal("2717.0312"), "currency": "USD",
             "raised_at": datetime(2026, 12, 2, 6, 0, tzinfo=UTC)},
        ])}),
}


def render(name: str, width: int, monkeypatch) -> str:
    args, patches = FIXTURES[name]
    for target, fake in patches.items():
        module, attr = target.rsplit(".", 1)
        monkeypatch.setattr(__import__(module, fromlist=[attr]), attr, fake)
    recorder = Console(width=width, record=True, color_system=None, force_terminal=False, file=open(os.devnull, "w"))
    monkeypatch.setattr(output, "console", recorder)
    monkeypatch.setenv("FINFOCUS_DATABASE_URL", "postgresql://unused@127.0.0.1:1/none")  # never connected
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return recorder.export_text() + result.output


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_table_matches_its_snapshot(name, width, monkeypatch):
    text = render(name, width, monkeypatch)
    assert all(len(line) <= width for line in text.splitlines()), "the table is wider than the terminal"
    assert "{'" not in text and "True" not in text  # no Python reprs
    for line in text.splitlines():  # an id column: whole, or a unique prefix that commands accept
        for full in (ANOMALY_ID, COMMAND_ID, "rec-5d41402abc4b2a76b9719d911017c592"):
            token = next((t for t in line.split() if t.startswith(full[:8])), None)
            if token and line.lstrip().startswith(token):
                assert token == full or (len(token) >= 12 and full.startswith(token) and "unique prefixes" in text
                                         and not full.startswith("rec-")), f"an id was cut: {token}"
    path = SNAPSHOTS / f"{name}_{width}.txt"
    if os.environ.get("FINFOCUS_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text)
    assert text == path.read_text()


def test_money_is_rounded_to_cents_and_one_anomaly_is_singular(monkeypatch):
    text = render("anomalies_list", 100, monkeypatch)
    assert "2,932.22 USD" in text and "2932.2172" not in text
    assert "1 anomaly" in text and "1 anomalies" not in text
    assert "2 anomalies" in render("anomalies_list_many", 100, monkeypatch)


def test_savings_not_measured_yet_instead_of_zero(monkeypatch):
    text = render("savings_report", 160, monkeypatch)
    assert "not measured yet" in text and "3.65" in text


def test_forecast_tables_are_sorted_by_cost_with_a_share_and_untagged_values(monkeypatch):
    text = render("forecast_show", 160, monkeypatch)
    assert text.index("Amazon Elastic") < text.index("BigQuery") < text.index("(none)")
    assert "%" in text


def test_unit_prices_keep_their_digits(monkeypatch):
    text = render("catalog_show", 80, monkeypatch)
    assert "0.0000166667" in text and "4.08" in text and "BoxUsage:c5.24xlarge" in text


def test_audit_and_results_print_no_python_reprs(monkeypatch):
    text = render("remediation_audit", 160, monkeypatch)
    assert "status: ok, dry_run:" in text and "yes" in text


def _direct(name: str, width: int, monkeypatch, draw) -> str:
    recorder = Console(width=width, record=True, color_system=None, force_terminal=False, file=open(os.devnull, "w"))
    monkeypatch.setattr(output, "console", recorder)
    draw()
    text = recorder.export_text()
    path = SNAPSHOTS / f"{name}_{width}.txt"
    if os.environ.get("FINFOCUS_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text)
    assert text == path.read_text()
    return text


@pytest.mark.parametrize("width", WIDTHS)
def test_cost_actual_table_sorted_by_cost_with_share_and_untagged(width, monkeypatch, capsys):
    from services.pricing.cli.cost import actual_table

    summary = {"totalCost": "3000.5772000000", "currency": "USD", "unpriced": 0}
    results = [
        {"group": {"service": "BigQuery", "tag:team": None}, "cost": "8.1300000000", "currency": "USD"},
        {"group": {"service": "Amazon Elastic Compute Cloud", "tag:team": "platform"}, "cost": "2992.4472000000",
         "currency": "USD"},
    ]
    text = _direct("cost_actual", width, monkeypatch,
                   lambda: actual_table(summary, results, ["service", "tag:team"], "billed"))
    assert text.index("Amazon Elastic") < text.index("BigQuery")
    assert "2,992.45" in text and "(untagged)" in text and "99.7 %" in text
    assert "Total USD: 3,000.58" in capsys.readouterr().out


@pytest.mark.parametrize("width", WIDTHS)
def test_anomalies_show_is_a_detail_view_with_the_feedback_note(width, monkeypatch):
    from services.anomaly.cli import show_detail

    text = _direct("anomalies_show", width, monkeypatch, lambda: show_detail(
        anomaly(0, "2932.2172000000"), {"verdict": "planned", "note": "load test for the launch", "actor": "cli"}))
    assert ANOMALY_ID in text and "load test for the launch" in text and "planned" in text
    assert "2,932.22 USD" in text
