"""One vocabulary: filter values, aliases, hints, -o/--file, -f, horizon limits, JSON keys."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from finfocus.cli import app
from finfocus.cli.vocab import canonical, matches, no_match_hint, plural
from schemas.reads.forecast import HorizonError, check_horizon, combine
from schemas.reads.pricing import actual_queries, parse_filter
from schemas.reads.remediation import savings_groups
from services.ingest.cli.export import _target


def test_provider_aliases_match_the_data_provider_names_case_insensitively():
    assert canonical("provider", "aws") == "AWS"
    assert canonical("provider", "Azure") == "Microsoft"
    assert canonical("provider", "GCP") == "Google Cloud"
    assert matches("provider", "aws", "AWS") and matches("service", "bigquery", "BigQuery")
    assert not matches("provider", "aws", "Microsoft")
    assert no_match_hint("provider", "awz", ["AWS", "Microsoft", None]) == (
        "nothing matches provider=awz; known values: AWS, Microsoft"
    )
    assert (
        plural(1, "anomaly", "anomalies") == "1 anomaly"
        and plural(2, "anomaly", "anomalies") == "2 anomalies"
    )


def test_cost_filters_compare_lower_cased_with_aliases_resolved():
    (sql, params), _ = actual_queries(
        ["provider"], "billed", None, None, [parse_filter("provider=aws")]
    )
    assert "lower(provider) = ANY(" in sql and ["aws"] in params
    assert parse_filter("provider=azure").value == "Microsoft"


def test_forecast_filters_use_the_same_vocabulary():
    through = date(2026, 12, 1)
    rows = [
        {
            "series_key": "k",
            "group": {"provider": "AWS", "service": "EC2"},
            "currency": "USD",
            "model": "Theta",
            "trained_through": through,
            "day": through + timedelta(days=i),
            "mean": Decimal(1),
            "lo_80": Decimal(0),
            "hi_80": Decimal(2),
            "lo_95": Decimal(0),
            "hi_95": Decimal(3),
        }
        for i in range(3)
    ]
    assert [f["group"] for f in combine(["service"], {"provider": "aws"}, rows, 2)] == [
        {"service": "EC2"}
    ]
    check_horizon(rows, 2)
    with pytest.raises(HorizonError, match="beyond the 2 days forecast.*--horizon 2 or less"):
        check_horizon(rows, 200)


def test_export_output_is_the_format_and_file_the_path(capsys):
    assert _target(Path("a.parquet"), "csv", None)[1].value == "csv"
    path, fmt = _target(None, "old.csv", None)  # the earlier spelling, for one release
    assert path == Path("old.csv") and fmt is None and "deprecated" in capsys.readouterr().err
    with pytest.raises(typer.Exit) as exc:
        _target(None, "json", None)  # used to write a CSV named json
    assert exc.value.exit_code == 2
    with pytest.raises(typer.Exit):
        _target(None, None, None)


def test_dash_f_is_filter_everywhere_and_no_longer_ingest_format():
    help_text = (
        CliRunner().invoke(app, ["ingest", "import", "--help"], env={"COLUMNS": "200"}).output
    )
    assert "--format" in help_text and "-f," not in help_text and "no -f" in help_text
    for command in (["cost", "actual"], ["forecast", "show"]):
        assert (
            "--filter"
            in CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
        )


def test_savings_json_keys_are_snake_case_with_the_old_keys_for_one_release():
    [g] = savings_groups(
        [
            {
                "playbook": "p",
                "account_id": "1",
                "action": "stop-instance",
                "currency": "USD",
                "expected_monthly": Decimal("5"),
                "realised_monthly": None,
            }
        ],
        ["playbook"],
    )
    assert g["expected_monthly"] == Decimal("5") and g["measured"] == 0
    assert g["expectedMonthly"] == g["expected_monthly"]  # deprecated alias


def test_budget_alerts_is_a_command():
    assert "budget" in CliRunner().invoke(app, ["budget", "alerts", "--help"]).output.lower()
