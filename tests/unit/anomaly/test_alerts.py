"""Subscriptions: thresholds (AND/OR), digests, rendering, backoff (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.anomaly.alerts import Subscription, backoff, render

ANOMALY = {
    "anomaly_id": "anm-1",
    "severity": "high",
    "status": "open",
    "monitor": "services",
    "dimension": {"ServiceName": "AmazonEC2"},
    "impact": "150.00",
    "impact_pct": "30.00",
    "actual_cost": "650.00",
    "expected_cost": "500.00",
    "currency": "USD",
    "window_start": "2026-03-29T00:00:00Z",
    "window_end": "2026-03-30T00:00:00Z",
}


def sub(**kw) -> Subscription:
    return Subscription(name="ops", webhook_secret="hook", **kw)


def test_thresholds_combine_with_and_or_or():
    assert sub(min_impact=100, min_impact_pct=20).wants(ANOMALY)
    assert not sub(min_impact=100, min_impact_pct=50).wants(ANOMALY)
    assert sub(min_impact=100, min_impact_pct=50, combine="or").wants(ANOMALY)
    assert not sub(min_impact=200, min_impact_pct=50, combine="or").wants(ANOMALY)


def test_resolved_acknowledged_and_filtered_anomalies_do_not_alert():
    assert not sub().wants({**ANOMALY, "status": "resolved"})
    assert not sub().wants({**ANOMALY, "status": "acknowledged"})
    assert not sub(severities=["critical"]).wants(ANOMALY)
    assert not sub(monitors=["regions"]).wants(ANOMALY)


def test_daily_digest_is_due_at_the_next_digest_hour():
    now = datetime(2026, 3, 29, 10, 30, tzinfo=UTC)
    assert sub().due_at(now) == now
    assert sub(frequency="daily", digest_hour=8).due_at(now) == datetime(2026, 3, 30, 8, tzinfo=UTC)
    assert sub(frequency="daily", digest_hour=12).due_at(now) == datetime(
        2026, 3, 29, 12, tzinfo=UTC
    )


def test_slack_and_teams_bodies_and_digests():
    assert "anm-1" in render("slack", [ANOMALY])["text"]
    teams = render("teams", [ANOMALY, {**ANOMALY, "anomaly_id": "anm-2"}])
    assert (
        teams["@type"] == "MessageCard"
        and "2 cost anomalies" in teams["title"]
        and "anm-2" in teams["text"]
    )
    assert render("json", [ANOMALY])["anomalies"] == [ANOMALY]


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, 30).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff(30, 30) == timedelta(hours=1)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError):
        Subscription(name="x", webhook_secret="y", treshold=5)
