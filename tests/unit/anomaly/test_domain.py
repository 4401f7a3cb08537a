"""Anomaly domain: ids, severity, root causes, reconciliation (no sockets)."""

from __future__ import annotations

import pathlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.anomaly.domain import (
    DEFAULT_MONITOR,
    CostLine,
    DailySeries,
    Finding,
    Raised,
    SeriesKey,
    SeverityPolicy,
    StoredLine,
    affected_series,
    anomaly_id,
    complete_through,
    findings_for,
    point_deltas,
    reconcile,
    root_causes,
)

KEY = SeriesKey("services", ("AWS", "111", "AmazonEC2"), "USD")
DIM = {"ProviderName": "AWS", "SubAccountId": "111", "ServiceName": "AmazonEC2"}
D0 = date(2026, 1, 1)


def finding(start: int, end: int, actual="500", expected="100") -> Finding:
    return Finding(
        KEY,
        D0 + timedelta(start),
        D0 + timedelta(end),
        Decimal(expected),
        Decimal(actual),
        9.0,
        "spike",
        "robust-seasonal",
        D0,
    )


def test_domain_imports_no_io_frameworks():
    root = pathlib.Path(__file__).resolve().parents[3] / "services" / "anomaly"
    for path in [root / "domain.py", root / "detectors.py"]:
        text = path.read_text()
        for banned in ("faststream", "asyncpg", "opentelemetry"):
            assert f"import {banned}" not in text and f"from {banned}" not in text


def test_anomaly_id_is_stable_per_monitor_dimension_and_start():
    a = anomaly_id("services", DIM, D0)
    assert a == anomaly_id("services", dict(reversed(list(DIM.items()))), D0)
    assert a != anomaly_id("services", DIM, D0 + timedelta(1))
    assert a != anomaly_id("regions", DIM, D0)
    assert a.startswith("anm-")


def test_severity_combines_money_and_percent():
    policy = SeverityPolicy()
    assert policy.of(Decimal("50000"), Decimal("300")) == "critical"
    assert policy.of(Decimal("600"), Decimal("300")) == "high"
    assert policy.of(Decimal("50000"), Decimal("5")) == "medium"
    assert policy.of(Decimal("20"), Decimal("30")) == "low"


def test_root_causes_add_up_to_the_impact_to_the_cent():
    window = {(("RegionId", f"r{i}"),): Decimal(f"{10 + i}.333") for i in range(8)}
    baseline = {(("RegionId", f"r{i}"),): Decimal("7.10") for i in range(6)}
    actual = sum(window.values())
    expected = Decimal("40.00")
    impact = actual - expected
    causes = root_causes(impact, expected, window, baseline)
    assert len(causes) == 6  # five largest and one "Other"
    assert sum(c for _, c in causes) == impact
    assert causes[-1][0] == {"Other": "3 more"}


def test_root_cause_of_a_new_resource_is_that_resource():
    window = {(("ResourceId", "i-1"),): Decimal("100"), (("ResourceId", "i-2"),): Decimal("400")}
    baseline = {(("ResourceId", "i-1"),): Decimal("2800")}
    causes = root_causes(Decimal("400"), Decimal("100"), window, baseline)
    assert causes[0] == ({"ResourceId": "i-2"}, Decimal("400.00"))
    assert sum(c for _, c in causes) == Decimal("400")


def test_new_finding_is_detected_and_repeat_evaluation_changes_nothing():
    through = D0 + timedelta(30)
    f = finding(25, 26)
    [change] = reconcile(KEY, DIM, [f], [], through=through, evaluated_from=D0)
    assert (change.kind, change.status) == ("detected", "open")
    raised = Raised(change.anomaly_id, KEY, f.start, f.end, f.expected, f.actual, "open")
    assert reconcile(KEY, DIM, [f], [raised], through=through, evaluated_from=D0) == []


def test_ongoing_anomaly_grows_instead_of_raising_a_new_one():
    first = finding(29, 30)
    [c1] = reconcile(KEY, DIM, [first], [], through=D0 + timedelta(29), evaluated_from=D0)
    assert c1.status == "ongoing"
    raised = Raised(
        c1.anomaly_id, KEY, first.start, first.end, first.expected, first.actual, "ongoing"
    )
    longer = finding(29, 31, actual="1000", expected="200")
    [c2] = reconcile(KEY, DIM, [longer], [raised], through=D0 + timedelta(30), evaluated_from=D0)
    assert (c2.kind, c2.anomaly_id, c2.status) == ("updated", c1.anomaly_id, "ongoing")


def test_anomaly_that_restated_data_removes_is_resolved():
    f = finding(10, 11)
    raised = Raised(
        anomaly_id("services", DIM, f.start), KEY, f.start, f.end, f.expected, f.actual, "open"
    )
    [change] = reconcile(KEY, DIM, [], [raised], through=D0 + timedelta(30), evaluated_from=D0)
    assert (change.kind, change.status) == ("resolved", "resolved")
    # outside the evaluated range it is left alone
    assert (
        reconcile(
            KEY, DIM, [], [raised], through=D0 + timedelta(30), evaluated_from=D0 + timedelta(20)
        )
        == []
    )


def test_feedback_suppresses_new_findings_of_the_series():
    f = finding(20, 21)
    assert (
        reconcile(
            KEY,
            DIM,
            [f],
            [],
            through=D0 + timedelta(30),
            evaluated_from=D0,
            suppress_until=D0 + timedelta(25),
        )
        == []
    )


def test_complete_days_follow_the_watermark():
    assert complete_through(datetime(2026, 1, 5, tzinfo=UTC)) == date(2026, 1, 4)
    assert complete_through(datetime(2026, 1, 5, 13, tzinfo=UTC)) == date(2026, 1, 4)
    assert complete_through(None) is None


def test_findings_are_expressed_in_money_with_impact_and_percent():
    values = {D0 + timedelta(d): Decimal("100.00") + Decimal(d % 3) for d in range(30)}
    values[D0 + timedelta(28)] = Decimal("700.00")
    series = DailySeries.from_points(values, D0, D0 + timedelta(29))
    [f] = findings_for(KEY, DEFAULT_MONITOR, series)
    assert f.start == D0 + timedelta(28) and f.end == D0 + timedelta(29)
    assert f.actual == Decimal("700.00")
    assert f.impact == f.actual - f.expected and f.impact_pct > 400


def test_lines_map_to_the_series_of_each_monitor():
    line = CostLine(
        "r1",
        "AWS",
        "999",
        "111",
        "AmazonEC2",
        "USD",
        D0,
        datetime(2026, 1, 2, tzinfo=UTC),
        Decimal(1),
    )
    assert list(affected_series([line], [DEFAULT_MONITOR])) == [KEY]


def test_partial_day_far_out_of_range_raises_an_intraday_warning():
    values = {D0 + timedelta(d): Decimal("240.00") + Decimal(d % 3) for d in range(30)}
    series = DailySeries.from_points(values, D0, D0 + timedelta(29))
    # half of the next day is in and already costs four days' worth
    [f] = findings_for(KEY, DEFAULT_MONITOR, series, partial=(Decimal("480.00"), 0.5))
    assert (f.start, f.end, f.kind) == (D0 + timedelta(30), D0 + timedelta(31), "intraday")
    assert f.actual == Decimal("480.00") and Decimal("115") < f.expected < Decimal("125")
    # a run-rate only mildly high is left for the complete day to judge
    assert findings_for(KEY, DEFAULT_MONITOR, series, partial=(Decimal("160.00"), 0.5)) == []


def _line(rid: str, day: int, cost: str, **kw) -> CostLine:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return CostLine(
        rid,
        "AWS",
        "999",
        "111",
        "AmazonEC2",
        "USD",
        start.date(),
        start + timedelta(hours=6),
        Decimal(cost),
        **kw,
    )


def test_point_deltas_add_new_lines_and_replace_earlier_copies():
    lines = [
        _line("new", 0, "10.50"),
        _line("repriced", 1, "7.00"),  # stored before at 5.00
        _line("recurring", 1, "99", charge_frequency="Recurring"),
        _line("unpriced", 2, "0", priced=False),
        _line("superseded", 3, "40", billing_scope="AWS:999:2026-01", billing_scope_version=1),
    ]
    previous = {"repriced": StoredLine(D0 + timedelta(1), Decimal("5.00"))}
    deltas = point_deltas(lines, previous, {"AWS:999:2026-01": 2})
    assert {d: c for d, (c, _) in deltas.items()} == {
        D0: Decimal("10.50"),
        D0 + timedelta(1): Decimal("2.00"),  # 7.00 - 5.00; the recurring fee adds nothing
        D0 + timedelta(2): Decimal(0),  # a point exists, but an unpriced line costs nothing
    }  # and a superseded version is no point at all
    assert deltas[D0][1] == datetime(2026, 1, 1, 6, tzinfo=UTC)


def test_point_deltas_of_a_plain_redelivery_are_zero():
    line = _line("same", 4, "3.30")
    deltas = point_deltas([line], {"same": StoredLine(line.day, Decimal("3.30"))}, {})
    assert deltas == {line.day: (Decimal(0), line.period_end)}
