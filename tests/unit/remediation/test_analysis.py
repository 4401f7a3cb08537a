"""Recommendation rules and the savings arithmetic (pure)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from services.remediation.analysis import (
    Catalog,
    MetricDay,
    ResourceUsage,
    billing_rules,
    realised_savings,
    utilisation_rules,
)

CATALOG = Catalog.load()
END = date(2026, 11, 20)
DAYS = [END - timedelta(days=i) for i in range(14)]


def usage(
    rid,
    cost="1.00",
    *,
    rtype=None,
    text="",
    account="a1",
    region="us-east-1",
    days=DAYS,
    quantities=None,
):
    return ResourceUsage(
        rid,
        "AWS",
        account,
        region,
        "Amazon EC2",
        rtype,
        "USD",
        text=text,
        daily_cost={d: Decimal(cost) for d in days},
        quantities=quantities or {},
    )


def types(recs):
    return {(r.type, r.resource.resource_id) for r in recs}


def test_idle_elastic_ip_gives_release_address_with_its_monthly_cost():
    [rec] = billing_rules([usage("eipalloc-1", "0.12", text="USE1-ElasticIP:IdleAddress")], CATALOG)
    assert (rec.type, rec.action) == ("idle-address", "release-address")
    assert rec.estimated_monthly_savings == Decimal("3.65")  # 0.12 x 365/12


def test_nat_gateway_with_hours_but_no_traffic_is_idle_and_busy_one_is_not():
    idle = usage("nat-1", "1.08", text="NatGateway-Hours", quantities={"GB": Decimal("2")})
    busy = usage("nat-2", "5.00", text="NatGateway-Hours", quantities={"GB": Decimal("900")})
    assert types(billing_rules([idle, busy], CATALOG)) == {("idle-nat-gateway", "nat-1")}


def test_volume_in_a_place_without_compute_is_unattached():
    vol = usage("vol-1", "0.80", region="eu-west-1")
    snap = usage("snap-1", "0.10", region="eu-west-1")
    attached = usage("vol-2", "0.80")
    inst = usage("i-1", "2.00", rtype="m5.large")
    found = types(billing_rules([vol, snap, attached, inst], CATALOG))
    assert ("unattached-volume", "vol-1") in found and ("orphan-snapshot", "snap-1") in found
    assert ("unattached-volume", "vol-2") not in found


def test_previous_generation_instance_gets_the_current_family_from_the_catalog():
    recs = [
        r
        for r in billing_rules([usage("i-old", "2.40", rtype="m4.large")], CATALOG)
        if r.type == "previous-generation"
    ]
    assert recs[0].params == {"instance_type": "m5.large"}
    # 2.40/day x 365/12 x (1 - 0.096/0.10)
    assert recs[0].estimated_monthly_savings == (
        Decimal("2.40") * 365 / 12 * Decimal("0.04")
    ).quantize(Decimal("0.01"))


def test_steady_on_demand_spend_gives_a_commitment_and_spend_that_drops_under_the_floor_does_not():
    steady = [usage(f"i-{n}", "12.00", rtype="m5.large", account="steady") for n in range(2)]
    spiky = usage("i-s", "1.00", rtype="m5.large", account="spiky")
    spiky.daily_cost[END] = Decimal("500")
    recs = [r for r in billing_rules([*steady, spiky], CATALOG) if r.type == "commitment"]
    assert [r.resource.account_id for r in recs] == ["steady"]
    assert recs[0].evidence["min_daily"] == "24.00"


def metrics(cpu, net, n=14, p995=None):
    return [
        MetricDay(d, Decimal(cpu), Decimal(p995) if p995 else None, None, Decimal(net))
        for d in DAYS[:n]
    ]


def test_trusted_advisor_idle_rule_needs_four_low_days():
    inst = usage("i-1", "2.00", rtype="m5.large")
    low = metrics("3", "1", n=4) + metrics("50", "900", n=14)[4:]
    assert types(utilisation_rules([inst], {"i-1": low}, CATALOG, END)) == {
        ("idle-instance", "i-1")
    }
    three = metrics("3", "1", n=3) + metrics("50", "900", n=14)[3:]
    assert types(utilisation_rules([inst], {"i-1": three}, CATALOG, END)) == set()


def test_rightsizing_keeps_twenty_percent_headroom_on_p995():
    inst = usage("i-1", "9.216", rtype="m5.2xlarge")
    [rec] = utilisation_rules([inst], {"i-1": metrics("15", "900", p995="20")}, CATALOG, END)
    # 20 % of 8 vCPU: on 2 vCPU that is 80 %, +20 % headroom = 96 % <= 100: m5.large
    assert rec.params == {"instance_type": "m5.large"}
    [rec] = utilisation_rules([inst], {"i-1": metrics("15", "900", p995="30")}, CATALOG, END)
    assert rec.params == {"instance_type": "m5.xlarge"}
    assert utilisation_rules([inst], {"i-1": metrics("40", "900", p995="45")}, CATALOG, END) == []


def test_realised_savings_counts_days_without_billing_as_zero():
    executed = date(2026, 11, 10)
    daily = {executed - timedelta(days=i): Decimal("10") for i in range(1, 8)}
    daily[executed + timedelta(days=1)] = Decimal("1")
    s = realised_savings(daily, executed, executed + timedelta(days=4))
    assert (s.baseline_daily, s.after_daily, s.days_after) == (Decimal("10"), Decimal("0.25"), 4)
    assert s.realised_monthly == (Decimal("9.75") * Decimal(365) / Decimal(12)).quantize(
        Decimal("0.01")
    )


def test_realised_savings_waits_for_a_full_day_after_the_action():
    executed = date(2026, 11, 10)
    s = realised_savings({executed - timedelta(days=1): Decimal("5")}, executed, executed)
    assert s.realised_monthly is None and s.days_after == 0
    assert realised_savings({}, executed, executed) is None


def test_a_long_analysis_takes_at_most_a_quarter_of_the_time():
    from services.remediation.analyzer import pause_after

    assert pause_after(0.0, 15.0) == 15.0  # nothing ran, or a quick run: the interval
    assert pause_after(2.0, 15.0) == 15.0
    assert pause_after(10.0, 15.0) == 30.0  # 10 s of every 40
    assert pause_after(200.0, 15.0) == 300.0  # never more than five minutes
