"""`finfocus anomalies` argument handling and SQL (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from typer.testing import CliRunner

from finfocus.cli import app
from services.anomaly.cli import _expand, list_query, parse_since


def test_since_accepts_dates_timestamps_and_relative_periods():
    assert parse_since("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_since("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    before = datetime.now(UTC)
    assert abs((before - parse_since("7d")).total_seconds() - 7 * 86400) < 5
    with pytest.raises(typer.BadParameter):
        parse_since("last week")


def test_severity_is_exact_or_at_least_with_plus():
    assert _expand(["high"]) == ["high"]
    assert _expand(["high+"]) == ["high", "critical"]
    assert _expand(["low,critical"]) == ["low", "critical"]
    with pytest.raises(typer.BadParameter):
        _expand(["urgent"])


def test_list_query_binds_every_user_value():
    sql, params = list_query(datetime(2026, 3, 1, tzinfo=UTC), ["high"], ["open"])
    assert "anomaly.v_anomalies" in sql and "2026" not in sql and "high" not in sql
    assert params == [datetime(2026, 3, 1, tzinfo=UTC), ["high"], ["open"]]


def test_commands_have_help_and_bad_usage_exits_2(tmp_path, monkeypatch):
    runner = CliRunner()
    for args in (
        ["anomalies", "--help"],
        ["anomalies", "list", "--help"],
        ["anomalies", "feedback", "--help"],
        ["anomalies", "monitors", "add", "--help"],
    ):
        assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, ["anomalies", "list", "--severity", "urgent"]).exit_code == 2
    monkeypatch.setenv("FINFOCUS_HOME", str(tmp_path))
    # checked before anything is sent (adding and listing: tests/integration/test_monitor_commands.py)
    assert runner.invoke(app, ["anomalies", "monitors", "add", "x", "-d", "Nope"]).exit_code == 2
    assert (
        runner.invoke(
            app, ["anomalies", "monitors", "add", "x", "-d", "RegionId", "--detector", "no"]
        ).exit_code
        == 2
    )
