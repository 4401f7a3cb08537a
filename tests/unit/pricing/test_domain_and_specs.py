"""Pricing rules and YAML price specs (no sockets)."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing.domain import NONE, PriceSpec, Quote, SpecBook, UsageLine, decide
from services.pricing.specs import SpecSource, load_file, load_specs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pricing"


def usage(**kw) -> UsageLine:
    base = dict(
        provider="AWS",
        service="AmazonEC2",
        currency="USD",
        quantity=Decimal("10"),
        unit="Hrs",
        resource_type="m5.large",
        region="us-east-1",
    )
    return UsageLine(**{**base, **kw})


BOOK = SpecBook.of(
    [
        PriceSpec(
            "ec2-m5.yaml",
            "AWS",
            "AmazonEC2",
            Decimal("0.096"),
            "USD",
            "Hrs",
            "m5.large",
            "us-east-1",
        ),
        PriceSpec(
            "ec2-m5-any.yaml", "AWS", "AmazonEC2", Decimal("0.1"), "USD", "Hrs", "m5.large", None
        ),
        PriceSpec("ec2-default.yaml", "aws", "amazonec2", Decimal("0.2"), "USD", "Hrs", None, None),
    ]
)


def test_billed_rows_pass_through_unchanged():
    decision = decide(
        usage(billed_cost=Decimal("-1.25")), [Quote("plugin:x", Decimal("9"), "USD")], BOOK
    )
    assert decision.source == "billed" and decision.billed_cost == Decimal("-1.25")


def test_plugin_quote_wins_over_specs_and_other_currencies_are_skipped():
    quotes = [
        None,
        Quote("plugin:eur", Decimal("1"), "EUR"),
        Quote("plugin:usd", Decimal("0.05"), "USD"),
    ]
    decision = decide(usage(), quotes, BOOK)
    assert decision.source == "plugin:usd" and decision.billed_cost == Decimal("0.50")
    assert decision.effective_cost == decision.billed_cost


def test_spec_lookup_exact_sku_then_any_region_then_service_default_then_none():
    assert decide(usage(), [], BOOK).source == "spec:ec2-m5.yaml"
    assert decide(usage(region="eu-west-1"), [], BOOK).source == "spec:ec2-m5-any.yaml"
    other = decide(usage(resource_type="c5.large"), [], BOOK)
    assert other.source == "spec:ec2-default.yaml" and other.billed_cost == Decimal("2.0")
    none = decide(usage(service="AmazonRDS"), [], BOOK)
    assert none.source == NONE and none.billed_cost is None and "no plugin or spec" in none.reason


def test_unpriced_is_explicit_never_a_silent_zero():
    decision = decide(usage(currency="JPY"), [], BOOK)
    assert decision.source == NONE and decision.billed_cost is None
    assert "other currency" in decision.reason


def test_a_price_in_another_unit_is_never_applied():
    gb_month = Quote("plugin:storage", Decimal("0.08"), "USD", "GB-Mo")
    decision = decide(usage(unit="Hours"), [gb_month], BOOK)
    assert decision.source == "spec:ec2-m5.yaml"  # the plugin's GB-month price is skipped
    assert (
        decide(usage(unit="Hours"), [Quote("plugin:x", Decimal("1"), "USD", "Hrs")], BOOK).source
        == "plugin:x"
    )
    assert (
        decide(usage(unit="Widgets"), [Quote("plugin:x", Decimal("1"), "USD", "Hrs")], BOOK).source
        == "plugin:x"
    )
    none = decide(
        usage(unit="GB", service="AmazonEC2"),
        [],
        SpecBook.of([BOOK.lookup("AWS", "AmazonEC2", None, None)]),
    )
    assert none.source == NONE and "unit" in none.reason


def test_spec_files_load_lists_and_single_entries(tmp_path: Path):
    book, problems = load_specs(FIXTURES / "specs")
    assert problems == []
    spec = book.lookup("Microsoft", "Virtual Machines", "Standard_B2s", "eastus")
    assert (
        spec is not None
        and spec.unit_price == Decimal("0.0416")
        and spec.file == "azure/virtual-machines.yaml"
    )
    assert book.lookup("AWS", "AmazonEC2", "anything", "mars-1").unit_price == Decimal("0.10")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("provider: AWS\nservice: S3\nunit: GB\nprice: abc\ncurrency: USD\n", "price"),
        ("provider: AWS\nservice: S3\nunit: GB\nprice: '1'\ncurrency: ZZZ\n", "unknown currency"),
        (
            "provider: AWS\nservice: S3\nunit: GB\nprice: '1'\ncurrency: USD\ncolour: red\n",
            "colour",
        ),
        ("provider: AWS\nservice: S3\nunit: GB\nprice: '-1'\ncurrency: USD\n", "non-negative"),
        ("- not a mapping\n", "mapping"),
    ],
)
def test_invalid_spec_files_are_refused_with_the_reason(tmp_path: Path, text: str, reason: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=reason):
        load_file(path)
    book, problems = load_specs(tmp_path)
    assert len(book) == 0 and problems[0].file.endswith("bad.yaml")


def test_spec_source_picks_up_changed_files(tmp_path: Path):
    now = [0.0]
    source = SpecSource(tmp_path, interval=5, clock=lambda: now[0])
    assert len(source()) == 0
    (tmp_path / "s3.yaml").write_text(
        "provider: AWS\nservice: AmazonS3\nunit: GB-Mo\nprice: '0.023'\ncurrency: USD\n"
    )
    assert len(source()) == 0  # not re-read before the interval
    now[0] = 6
    assert source().lookup("AWS", "AmazonS3", None, None).unit_price == Decimal("0.023")


def test_domain_modules_import_no_io_frameworks():
    root = Path(__file__).resolve().parents[3] / "services" / "pricing"
    for module in [root / "domain.py", root / "projected.py"]:
        tree = ast.parse(module.read_text())
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
        assert not names & {"faststream", "asyncpg", "opentelemetry", "grpc"}, module


def test_only_scope_versions_not_yet_stored_need_the_exclusive_write():
    from services.pricing.domain import ScopeVersions

    known = ScopeVersions()
    first = {"AWS:012:2024-09": 1, "AWS:012:2024-10": 1}
    assert known.fresh(first) == first  # nothing stored yet: the scope rows must be written
    known.stored(first)
    assert known.fresh({"AWS:012:2024-09": 1}) == {}  # the rest of the import
    assert known.fresh({"AWS:012:2024-09": 0}) == {}  # a late, superseded version
    assert known.fresh({"AWS:012:2024-09": 2, "AWS:012:2024-10": 1}) == {
        "AWS:012:2024-09": 2
    }  # a restatement
    known.stored({"AWS:012:2024-09": 2})
    known.stored({"AWS:012:2024-09": 1})  # an older chunk committed late never lowers what is known
    assert known.fresh({"AWS:012:2024-09": 2}) == {}
