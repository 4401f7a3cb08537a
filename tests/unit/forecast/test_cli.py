"""`finfocus forecast show` helpers: argument parsing and combining stored series."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.forecast.cli.forecast import chart, combine, parse_filters, parse_group_by, public

THROUGH = date(2024, 5, 31)


def rows(
    group: dict, mean: str, spread: str, model: str = "Theta", currency: str = "USD", days: int = 3
):
    m, w = Decimal(mean), Decimal(spread)
    return [
        {
            "series_key": f"{sorted(group.items())}|{currency}",
            "group": group,
            "currency": currency,
            "model": model,
            "trained_through": THROUGH,
            "day": THROUGH + timedelta(days=i),
            "mean": m,
            "lo_80": m - w,
            "hi_80": m + w,
            "lo_95": m - 2 * w,
            "hi_95": m + 2 * w,
        }
        for i in range(days + 1)  # the first row is trained_through itself: never shown
    ]


def test_group_by_and_filter_parsing():
    assert parse_group_by("provider, service,tag:team") == ["provider", "service", "tag:team"]
    assert parse_group_by("") == []
    for bad in ("daily", "colour", "tag:", "service,service"):
        with pytest.raises(ValueError):
            parse_group_by(bad)
    assert parse_filters(["provider=AWS", "tag:team=a=b"]) == {"provider": "AWS", "tag:team": "a=b"}
    with pytest.raises(ValueError):
        parse_filters(["provider"])


def test_exact_grouping_keeps_stored_points_and_horizon():
    data = rows({"service": "EC2"}, "10", "1") + rows({"service": "S3"}, "2", "0.5")
    out = combine(["service"], {}, data, horizon=2)
    assert [f["group"] for f in out] == [{"service": "EC2"}, {"service": "S3"}]
    ec2 = out[0]
    assert ec2["model"] == "Theta" and ec2["trained_through"] == "2024-05-31"
    assert [p["date"] for p in ec2["points"]] == ["2024-06-01", "2024-06-02"]
    assert ec2["points"][0] == {
        "date": "2024-06-01",
        "mean": "10.00",
        "lo_80": "9.00",
        "hi_80": "11.00",
        "lo_95": "8.00",
        "hi_95": "12.00",
    }


def test_filter_on_an_ungrouped_key_adds_up_finer_series():
    data = (
        rows({"provider": "AWS", "service": "EC2"}, "10", "3")
        + rows({"provider": "AWS", "service": "S3"}, "5", "4", model="MSTL")
        + rows({"provider": "GCP", "service": "GCE"}, "100", "1")
    )
    [aws] = combine(["provider"], {"provider": "AWS"}, data, horizon=5)
    assert aws["group"] == {"provider": "AWS"}
    assert aws["model"] == "sum(MSTL,Theta)"
    p = aws["points"][0]
    assert p["mean"] == "15.00"
    assert p["hi_80"] == "20.00" and p["lo_80"] == "10.00"  # sqrt(3^2 + 4^2) = 5
    assert p["hi_95"] == "25.00"


def test_currency_appears_only_when_several():
    one = combine([], {}, rows({}, "1", "0"), 1)
    assert list(public(one)[0]) == ["group", "model", "trained_through", "points"]
    two = combine([], {}, rows({}, "1", "0") + rows({}, "1", "0", currency="EUR"), 1)
    assert {f["currency"] for f in public(two)} == {"USD", "EUR"}


def test_chart_spans_the_range():
    assert chart([Decimal(1), Decimal(5), Decimal(9)]) == "▁▄█"
    assert chart([Decimal(2)] * 3) == "▁▁▁"
