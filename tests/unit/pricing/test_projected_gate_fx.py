"""The gate (budget, policy files, unpriced resources), currencies at a stated rate, and the
price snapshot's history."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing.domain import SpecBook
from services.pricing.fx import RateTable, parse_rates
from services.pricing.policy import Policy, budget_violations, evaluate, load_policy
from services.pricing.projected import compare_to_base, price_plan
from services.pricing.snapshot import BUNDLED_DIR, PriceSnapshot, gcp_shape, merge
from services.pricing.usage import UsageFile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SNAPSHOT = PriceSnapshot.load(BUNDLED_DIR)
ECB = parse_rates((FIXTURES / "pricing" / "ecb-rates-sample.csv").read_text())


async def priced(name: str, **kw) -> dict:
    plan = json.loads((FIXTURES / "pulumi" / name).read_text())
    return await price_plan(plan, specs=SpecBook(), quotes=None, snapshot=SNAPSHOT, **kw)


async def test_one_unknown_resource_fails_the_budget_and_is_named():
    doc = await priced("aws-unknown-preview.json")
    [v] = budget_violations(doc, Decimal("1000"))
    assert (
        v.rule == "unpriced" and v.resource == "sessions" and "aws:dynamodb/table:Table" in v.reason
    )
    assert "--allow-unpriced" in v.reason
    assert budget_violations(doc, Decimal("1000"), allow_unpriced=True) == []
    over = budget_violations(doc, Decimal("1"), allow_unpriced=True)
    assert [x.rule for x in over] == ["max_monthly"] and "8.39 USD exceeds 1.00 USD" in over[
        0
    ].reason


async def test_a_policy_file_gives_one_reason_per_violation():
    usage = UsageFile.load(FIXTURES / "pricing" / "infracost-usage.yml")
    doc = await priced("aws-coverage-preview.json", usage=usage)
    policy = load_policy(FIXTURES / "pricing" / "policy.yaml")
    found = evaluate(doc, policy)
    rules = [(v.rule, v.resource) for v in found]
    assert ("resource_cap", "orders") in rules  # 909.88 > 400
    assert ("resource_cap", "analytics") in rules  # 588.42 > 500
    assert ("required_tags", "analytics") in rules and ("required_tags", "api") not in rules
    assert ("required_tags", "lambda") not in rules  # free resources are not tag-checked
    assert ("max_increase", None) in rules and ("max_increase_percent", None) in rules  # from 0
    assert ("max_monthly", None) not in rules  # 1,999.35 <= 2,500
    cap = next(v for v in found if v.resource == "orders")
    assert (
        cap.reason
        == "orders costs 909.88 USD/month, over the cap of 400.00 USD for type aws:rds/instance:Instance"
    )
    # against a base plan, the increase is measured from the base total
    base = await priced("aws-preview.json")
    compare_to_base(doc, base)
    inc = next(
        v for v in evaluate(doc, Policy(max_increase=Decimal("1000"))) if v.rule == "max_increase"
    )
    assert "vs the base plan (396.61 -> 1,999.35)" in inc.reason
    pct = evaluate(doc, Policy(max_increase_percent=Decimal("400")))
    assert [v.rule for v in pct] == ["max_increase_percent"] and "404.11%" in pct[0].reason
    assert evaluate(doc, Policy(max_increase_percent=Decimal("405"))) == []


def test_policy_files_are_validated(tmp_path: Path):
    bad = tmp_path / "p.yaml"
    bad.write_text("max_monthly: lots\n")
    with pytest.raises(ValueError, match="max_monthly"):
        load_policy(bad)
    bad.write_text("budget: 3\n")
    with pytest.raises(ValueError, match="budget: Extra inputs are not permitted"):
        load_policy(bad)
    bad.write_text("resource_caps: [{max_monthly: 3}]\n")
    with pytest.raises(ValueError, match="needs a type or a name"):
        load_policy(bad)
    assert load_policy(FIXTURES / "pricing" / "policy.yaml").max_monthly == Decimal("2500")


def test_ecb_and_long_rate_files():
    assert len(ECB) == 3 * 30  # 30 published currencies a day; N/A columns skipped
    table = RateTable(ECB)
    conv = table.conversion("USD", "EUR", date(2024, 9, 2))
    assert conv.rate == Decimal(1) / Decimal("1.1066") and conv.day == date(2024, 9, 2)
    weekend = table.conversion("USD", "EUR", date(2024, 9, 1))  # a Sunday: Friday's rate, said so
    assert (
        weekend.day == date(2024, 8, 30) and "latest on or before 2024-09-01" in weekend.describe()
    )
    assert table.conversion("USD", "GBP", date(2024, 9, 3)).rate == Decimal("0.84128") / Decimal(
        "1.1037"
    )
    assert table.conversion("USD", "EUR").day == date(2024, 9, 3)  # no date: the latest
    long = parse_rates((FIXTURES / "pricing" / "rates-long.csv").read_text())
    assert {(r.currency, r.rate) for r in long} >= {("USD", Decimal("1.1066"))} and long[
        0
    ].base == "EUR"
    with pytest.raises(
        ValueError, match="no exchange rate from USD to EUR on or up to 7 days before 2024-01-01"
    ):
        table.conversion("USD", "EUR", date(2024, 1, 1))
    with pytest.raises(ValueError, match="line 2: rate 'x' is not a decimal"):
        parse_rates("date,currency,rate\n2024-09-02,USD,x\n")
    with pytest.raises(ValueError, match="not a rates file"):
        parse_rates("hello,world\n1,2\n")


async def test_currency_conversion_uses_the_stated_dates_rate_and_says_so():
    conv = RateTable(ECB).conversion("USD", "EUR", date(2024, 9, 2))
    doc = await priced("aws-preview.json", currency="EUR", fx=conv)
    usd = await priced("aws-preview.json")
    s = doc["summary"]
    assert s["currency"] == "EUR" and s["unpriced"] == 0
    assert Decimal(s["totalMonthly"]) == Decimal(usd["summary"]["totalMonthly"]) / Decimal(
        "1.1066"
    ) or abs(
        Decimal(s["totalMonthly"]) - Decimal(usd["summary"]["totalMonthly"]) / Decimal("1.1066")
    ) < Decimal("1e-20")
    assert s["exchangeRate"]["date"] == "2024-09-02" and s["exchangeRate"]["from"] == "USD"
    assert "rate of 2024-09-02" in s["exchangeRate"]["text"] and "ECB" in s["exchangeRate"]["text"]
    web = next(r for r in doc["resources"] if r["name"] == "web")
    assert web["currency"] == "EUR" and all(c.get("converted") for c in web["components"])
    # without a rate nothing is priced as 0: every row says why
    none = await priced("aws-preview.json", currency="EUR")
    assert none["summary"]["unpriced"] == 10
    assert (
        "give an exchange rate to EUR"
        in next(r for r in none["resources"] if r["name"] == "web")["reason"]
    )


def test_gcp_machine_types_are_derived_from_vcpu_and_memory_prices():
    assert gcp_shape("n2-highmem-4")[1:3] == (Decimal(4), Decimal(32))
    assert gcp_shape("n1-standard-2")[1:3] == (Decimal(2), Decimal("7.50"))
    assert gcp_shape("zones/us-central1-a/machineTypes/e2-custom-4-8192")[:3] == (
        "e2",
        Decimal(4),
        Decimal(8),
    )
    hit = SNAPSHOT.lookup("Google Cloud", "Compute Engine", "e2-standard-2", "us-central1")
    assert hit.price == Decimal("0.067006") and hit.source == "snapshot:gcp"
    assert SNAPSHOT.lookup("Google Cloud", "Compute Engine", "e2-standard-2", "mars-1") is None


def test_snapshot_info_names_source_and_age():
    infos = {i.cloud: i for i in SNAPSHOT.infos}
    assert set(infos) == {"aws", "azure", "gcp"}
    assert (
        "Retail Prices API" in infos["azure"].source
        and "Cloud Billing Catalog" in infos["gcp"].source
    )
    assert infos["aws"].age_days(date(2024, 9, 11)) == 10 and infos["aws"].bundled


def test_a_refresh_keeps_superseded_prices_in_the_history():
    old = {
        "provider": "AWS",
        "effectiveDate": "2024-09-01",
        "prices": [
            {
                "service": "AmazonEC2",
                "sku": "t3.micro",
                "region": "us-east-1",
                "unit": "Hrs",
                "price": "0.0104",
            },
            {
                "service": "AmazonEC2",
                "sku": "m5.large",
                "region": "us-east-1",
                "unit": "Hrs",
                "price": "0.096",
            },
            {
                "service": "AmazonEC2",
                "sku": "m4.large",
                "region": "us-east-1",
                "unit": "Hrs",
                "price": "0.1",
            },
        ],
    }
    fresh = {
        "provider": "AWS",
        "effectiveDate": "2024-10-01",
        "prices": [
            {
                "service": "AmazonEC2",
                "sku": "t3.micro",
                "region": "us-east-1",
                "unit": "Hrs",
                "price": "0.0104",
            },
            {
                "service": "AmazonEC2",
                "sku": "m5.large",
                "region": "us-east-1",
                "unit": "Hrs",
                "price": "0.09",
            },
            {
                "service": "AmazonEC2",
                "sku": "c7i.large",
                "region": "us-east-1",
                "unit": "Hrs",
                "price": "0.08925",
            },
        ],
    }
    doc, counts = merge(old, fresh, datetime(2024, 10, 2, tzinfo=UTC))
    assert counts == {"new": 1, "changed": 1, "unchanged": 1, "withdrawn": 1}
    rows = {r["sku"]: r for r in doc["prices"]}
    assert (
        rows["t3.micro"]["effectiveFrom"] == "2024-09-01"
        and rows["c7i.large"]["effectiveFrom"] == "2024-10-01"
    )
    assert {(h["sku"], h["price"], h["effectiveTo"]) for h in doc["history"]} == {
        ("m5.large", "0.096", "2024-10-02T00:00:00Z"),
        ("m4.large", "0.1", "2024-10-02T00:00:00Z"),
    }


def test_the_pure_modules_import_no_io_frameworks():
    import ast

    root = Path(__file__).resolve().parents[3] / "services" / "pricing"
    for name in ("projected.py", "terraform.py", "policy.py", "fx.py", "usage.py", "snapshot.py"):
        tree = ast.parse((root / name).read_text())
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        names |= {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not names & {
            "faststream",
            "asyncpg",
            "opentelemetry",
            "grpc",
            "httpx",
            "aiokafka",
        }, name
