"""`cost actual` option parsing and SQL building: user values are always bound parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.reads.pricing import (
    UsageError,
    actual_queries,
    parse_filter,
    parse_group_by,
    parse_when,
    summary_of,
)


def test_group_by_accepts_the_documented_names_and_tags():
    assert parse_group_by("provider, service,tag:team,daily,provider") == [
        "provider",
        "service",
        "tag:team",
        "daily",
    ]
    with pytest.raises(UsageError, match="unknown --group-by 'colour'"):
        parse_group_by("colour")
    with pytest.raises(UsageError):
        parse_group_by("tag:")


def test_filters_parse_equal_not_equal_and_tags():
    assert parse_filter("service=AmazonEC2").negate is False
    f = parse_filter("tag:env!=prod")
    assert (f.key, f.value, f.negate) == ("tag:env", "prod", True)
    with pytest.raises(UsageError):
        parse_filter("nonsense")
    with pytest.raises(UsageError, match="unknown --filter key"):
        parse_filter("1=1 OR x=x")


def test_user_values_never_reach_the_sql_text():
    evil = "x'); DROP TABLE pricing.cost_lines; --"
    (sql, params), (tsql, tparams) = actual_queries(
        ["tag:" + evil, "account"],
        "effective",
        datetime(2024, 9, 1, tzinfo=UTC),
        datetime(2024, 10, 1, tzinfo=UTC),
        [parse_filter(f"service={evil}"), parse_filter(f"tag:{evil}!={evil}")],
    )
    assert evil not in sql and evil not in tsql
    assert evil in params and [evil.casefold()] in params  # filter values compare lower-cased
    assert (
        "sum(effective_cost)" in sql
        and "charge_period_start >= $" in sql
        and "charge_period_start < $" in sql
    )
    assert "FROM pricing.v_cost_lines" in sql and "FROM pricing.v_cost_lines" in tsql


def test_equal_filters_on_one_key_are_alternatives():
    (sql, params), _ = actual_queries(
        [], "billed", None, None, [parse_filter("region=a"), parse_filter("region=b")]
    )
    assert params == [["a", "b"]] and "= ANY($1::text[])" in sql


def test_dates_are_midnight_utc_or_rfc3339():
    assert parse_when("2024-09-01", "--from") == datetime(2024, 9, 1, tzinfo=UTC)
    assert parse_when("2024-09-01T10:00:00Z", "--to") == datetime(2024, 9, 1, 10, tzinfo=UTC)
    with pytest.raises(UsageError):
        parse_when("yesterday", "--from")


def test_several_currencies_give_totals_never_one_sum():
    from decimal import Decimal

    totals = [
        {"currency": "EUR", "cost": Decimal("1"), "lines": 1, "unpriced": 0},
        {"currency": "USD", "cost": Decimal("2.50"), "lines": 2, "unpriced": 1},
    ]
    summary = summary_of(totals, None, None, "billed", [])
    assert "totalCost" not in summary and summary["totals"][1] == {
        "currency": "USD",
        "totalCost": "2.50",
    }
    assert summary["unpriced"] == 1
    single = summary_of(totals[1:], None, None, "billed", [])
    assert single["totalCost"] == "2.50" and single["currency"] == "USD"
