"""Remediation command-line pieces that need no broker or database."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from finfocus.cli import app
from services.remediation.cli import parse_metrics_csv, savings_groups

runner = CliRunner()
GOOD = """
name: good
trigger: {anomaly: {min_severity: high}}
actions: [{action: stop-instance}]
"""


def test_playbooks_validate_exit_codes(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("stop-instance", "terminate-instance"))
    ok = runner.invoke(app, ["playbooks", "validate", str(good)])
    assert ok.exit_code == 0 and "ok:" in ok.output
    refused = runner.invoke(app, ["playbooks", "validate", str(good), str(bad)])
    assert refused.exit_code == 1 and "unknown action 'terminate-instance'" in refused.output
    missing = runner.invoke(app, ["playbooks", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2


def test_list_with_unknown_status_is_a_usage_error():
    result = runner.invoke(app, ["remediation", "list", "--status", "done"])
    assert result.exit_code == 2


def test_savings_groups_sum_per_group_and_currency_without_mixing():
    rows = [
        {
            "playbook": "p",
            "account_id": "a",
            "action": "stop-instance",
            "currency": "USD",
            "expected_monthly": Decimal("100.00"),
            "realised_monthly": Decimal("80.10"),
        },
        {
            "playbook": "p",
            "account_id": "a",
            "action": "stop-instance",
            "currency": "USD",
            "expected_monthly": Decimal("50.00"),
            "realised_monthly": None,
        },
        {
            "playbook": "p",
            "account_id": "b",
            "action": "stop-instance",
            "currency": "EUR",
            "expected_monthly": Decimal("10.00"),
            "realised_monthly": Decimal("9.99"),
        },
    ]
    [eur, usd] = savings_groups(rows, ["playbook"])
    assert (usd["currency"], usd["actions"], usd["measured"]) == ("USD", 2, 1)
    assert (usd["expectedMonthly"], usd["realisedMonthly"]) == (Decimal("150.00"), Decimal("80.10"))
    assert (eur["currency"], eur["realisedMonthly"]) == ("EUR", Decimal("9.99"))


def test_metrics_csv_accepts_aliases_and_reports_bad_lines(tmp_path: Path):
    csv = tmp_path / "m.csv"
    csv.write_text(
        "ResourceId,date,cpu,network\ni-1,2026-11-01,3.5,1.2\ni-1,2026-13-01,1,1\n,2026-11-02,1,1\n"
    )
    metrics, errors = parse_metrics_csv(csv)
    assert [(m.resource_id, m.cpu_avg_pct, m.network_mb) for m in metrics] == [
        ("i-1", Decimal("3.5"), Decimal("1.2"))
    ]
    assert len(errors) == 2 and errors[0].startswith("line 3")
