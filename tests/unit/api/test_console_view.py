"""The console's pure helpers: money for people, the explorer's query from its URL, the table
with shares and "(untagged)", the stacked chart and the CSV."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.api.console import view


def test_money_rounds_half_up_to_cents_and_separates_thousands():
    assert view.money("5843.675", "USD") == "5,843.68 USD"
    assert view.money(Decimal("-1234567.004")) == "-1,234,567.00"
    assert view.money(None) == "–"


def test_totals_text_shows_each_currency_and_never_adds_them():
    assert view.totals_text({"totalCost": "5843.67", "currency": "USD"}) == "5,843.67 USD"
    several = {
        "totals": [
            {"currency": "EUR", "totalCost": "10"},
            {"currency": "USD", "totalCost": "2000.5"},
        ]
    }
    assert view.totals_text(several) == "10.00 EUR · 2,000.50 USD"
    assert view.totals_text({"totalCost": "0", "currency": None}) == "0.00"


def test_explorer_query_from_the_url_defaults_to_month_to_date_by_service_daily():
    q = view.ExplorerQuery.from_params({}, [], today=date(2026, 12, 2))
    assert (q.start, q.end, q.group_by, q.metric) == (
        "2026-12-01",
        "2026-12-03",
        ["daily", "service"],
        "billed",
    )


def test_explorer_query_keeps_two_dimensions_one_bucket_and_the_filters():
    q = view.ExplorerQuery.from_params(
        {
            "from": "2026-10-01",
            "to": "2026-11-01",
            "group_by": "monthly,service,tag:team,region",
            "metric": "effective",
        },
        ["provider=AWS", " "],
    )
    assert q.group_by == ["monthly", "service", "tag:team"]
    assert q.filters == ["provider=AWS"]
    assert q.errors == ["at most two dimensions: 'region' ignored"]
    assert q.url() == (
        "/costs?from=2026-10-01&to=2026-11-01&metric=effective"
        "&group_by=monthly%2Cservice%2Ctag%3Ateam&filter=provider%3DAWS"
    )
    assert view.ExplorerQuery.from_params(
        {"granularity": "none", "dim1": "account"}, []
    ).group_by == ["account"]


def test_explorer_query_refuses_a_bad_date_and_metric_with_a_reason():
    q = view.ExplorerQuery.from_params(
        {"from": "yesterday", "metric": "cheapest"}, [], today=date(2026, 12, 2)
    )
    assert q.start == "2026-12-01" and q.metric == "billed"
    assert len(q.errors) == 2


def test_table_sums_over_the_bucket_with_shares_and_untagged():
    q = view.ExplorerQuery("2026-10-01", "2026-11-01", ["tag:team"], "daily")
    results = [
        {"group": {"daily": "2026-10-01", "tag:team": "web"}, "cost": "10.00", "currency": "USD"},
        {"group": {"daily": "2026-10-02", "tag:team": "web"}, "cost": "20.00", "currency": "USD"},
        {"group": {"daily": "2026-10-01", "tag:team": None}, "cost": "10.00", "currency": "USD"},
    ]
    table = view.explorer_table(results, q, [{"currency": "USD", "totalCost": "40.00"}])
    assert [(r["labels"], r["cost"], r["share"]) for r in table] == [
        (["web"], Decimal("30.00"), Decimal("75.0")),
        (["(untagged)"], Decimal("10.00"), Decimal("25.0")),
    ]
    rows = view.csv_rows(table, q)
    assert rows[0] == ["tag:team", "currency", "cost", "share_pct"]
    assert sum(Decimal(r[2]) for r in rows[1:]) == Decimal("40.00")
    chart = view.chart_series(results, q)
    assert chart["x"] == ["2026-10-01", "2026-10-02"]
    assert chart["series"][0] == {"name": "web", "data": ["10.00", "20.00"]}
    assert chart["series"][1] == {"name": "(untagged)", "data": ["10.00", "0"]}


def test_share_is_none_without_a_total():
    assert view.share_pct("5", "0") is None
    assert view.share_pct("50", "200") == Decimal("25.0")
