"""The demo's sample generator: deterministic, exact totals, valid FOCUS rows, a clear spike."""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from finfocus.sample_data import SPIKE_RESOURCE_ID, build_sample, generate
from schemas.ingest import BillingRecordV1

END = date(2026, 11, 22)


def test_same_seed_and_end_give_the_same_rows():
    assert generate(end=END, seed=7)[0] == generate(end=END, seed=7)[0]
    assert generate(end=END, seed=7)[0] != generate(end=END, seed=8)[0]


def test_overlapping_windows_agree_on_shared_days_so_reimports_do_not_double_count():
    earlier_rows, earlier_summary = generate(end=END - timedelta(days=10))
    spiked = {d.isoformat() for d in earlier_summary.spike_days}
    earlier = {
        r["x_RecordId"]: r for r in earlier_rows if r["ChargePeriodStart"][:10] not in spiked
    }
    later = {r["x_RecordId"]: r for r in generate(end=END)[0]}
    shared = set(earlier) & set(later)
    assert len(shared) > 500
    # spike days are anchored to the end; outside those, every shared row is identical
    assert sum(earlier[k] != later[k] for k in shared) == 0


def test_record_ids_are_unique():
    rows, _ = generate(end=END)
    assert len({r["x_RecordId"] for r in rows}) == len(rows)


def test_totals_are_exact_decimals_that_reconcile_with_the_written_csv(tmp_path):
    path, summary = build_sample(tmp_path, end=END)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary.rows
    total = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
    assert summary.totals == {"USD": total}
    assert sum(summary.by_provider.values(), Decimal(0)) == total
    assert all(
        Decimal(r["BilledCost"]) == Decimal(r["BilledCost"]).quantize(Decimal("0.01")) for r in rows
    )


def test_every_row_is_a_valid_billing_record_across_three_clouds():
    rows, summary = generate(end=END)
    providers, accounts, services, regions = set(), set(), set(), set()
    for row in rows:
        data = {k: v for k, v in row.items() if v != ""}
        if "Tags" in data:
            data["Tags"] = json.loads(data["Tags"])
        record = BillingRecordV1.model_validate(data)
        providers.add(record.ProviderName)
        accounts.add(record.SubAccountId)
        services.add(record.ServiceName)
        regions.add(record.RegionId)
    assert providers == {"AWS", "Microsoft", "Google Cloud"}
    assert len(accounts) >= 6 and len(services) >= 10 and len(regions) >= 5
    assert summary.start == END - timedelta(days=60)


def test_recurring_monthly_fee_on_each_first_of_month():
    rows, summary = generate(end=END)
    fees = [r for r in rows if r["ChargeFrequency"] == "Recurring"]
    firsts = [summary.start + timedelta(days=n) for n in range(60)]
    firsts = [d for d in firsts if d.day == 1]
    assert [r["ChargePeriodStart"][:10] for r in fees] == [d.isoformat() for d in firsts]
    assert all(r["BilledCost"] == "100.00" and r["ChargeCategory"] == "Purchase" for r in fees)


def test_weekends_are_quieter_for_weekday_workloads():
    rows, _ = generate(end=END)
    by_kind = defaultdict(list)
    for r in rows:
        if r["ResourceName"] == "ci-runner":
            weekend = date.fromisoformat(r["ChargePeriodStart"][:10]).weekday() >= 5
            by_kind[weekend].append(Decimal(r["BilledCost"]))
    assert statistics.mean(by_kind[True]) < Decimal("0.5") * statistics.mean(by_kind[False])


def test_one_ec2_instance_spikes_in_the_last_three_days():
    rows, summary = generate(end=END)
    assert summary.spike_days == tuple(END - timedelta(days=n) for n in (3, 2, 1))
    daily = {
        date.fromisoformat(r["ChargePeriodStart"][:10]): Decimal(r["BilledCost"])
        for r in rows
        if r["ResourceId"] == SPIKE_RESOURCE_ID
    }
    before = [cost for day, cost in daily.items() if day not in summary.spike_days]
    baseline = statistics.median(before)
    assert all(daily[day] > 4 * baseline for day in summary.spike_days)
    assert max(before) < Decimal("1.2") * baseline
    # nothing else jumps: every other resource stays within 2x its own median on spike days
    others = defaultdict(dict)
    for r in rows:
        if r["ResourceId"] and r["ResourceId"] != SPIKE_RESOURCE_ID:
            others[r["ResourceId"]][date.fromisoformat(r["ChargePeriodStart"][:10])] = Decimal(
                r["BilledCost"]
            )
    for series in others.values():
        med = statistics.median(series.values())
        assert all(series[d] <= 2 * med + Decimal("0.05") for d in summary.spike_days)
