"""`finfocus cost projected` end to end: Pulumi and Terraform plans priced from the bundled
snapshot, the gate failing closed, policies, a base plan, and `--currency` at a stated rate
(from a file, and from rates imported into the database with `finfocus fx import`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finfocus.cli import app as cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PULUMI, TERRAFORM, PRICING = FIXTURES / "pulumi", FIXTURES / "terraform", FIXTURES / "pricing"
USAGE = str(PRICING / "infracost-usage.yml")


def invoke(tmp_path: Path, *args: str):
    env = {"FINFOCUS_HOME": str(tmp_path / "home")}
    return CliRunner().invoke(cli, ["cost", "projected", *args], env=env)


def total(result) -> Decimal:
    return Decimal(json.loads(result.stdout)["summary"]["totalMonthly"]).quantize(Decimal("0.01"))


def test_the_fixture_plans_of_the_three_clouds_price_fully_with_no_setup(tmp_path: Path):
    for plan, expected, source in (
        ("aws-preview.json", "396.61", "snapshot:aws"),
        ("azure-preview.json", "108.04", "snapshot:azure"),
        ("gcp-preview.json", "2794.32", "snapshot:gcp"),
    ):
        result = invoke(
            tmp_path, "--pulumi-json", str(PULUMI / plan), "--output", "json", "--budget", "5000"
        )
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["summary"]["unpriced"] == 0 and total(result) == Decimal(expected), plan
        assert source in {r["priceSource"] for r in doc["resources"]}
        assert (
            doc["gate"]["passed"]
            and doc["summary"]["priceData"][0]["effectiveDate"] == "2024-09-01"
        )


def test_budget_exceeded_exits_1_and_the_markdown_comment_says_why(tmp_path: Path):
    plan = str(PULUMI / "aws-preview.json")
    over = invoke(tmp_path, "--pulumi-json", plan, "--output", "markdown", "--budget", "300")
    assert over.exit_code == 1
    assert over.stdout.startswith("## FinFocus cost estimate")
    assert (
        "❌ budget 300.00 USD: 1 violation(s)" in over.stdout
        and "**max_monthly**: monthly total 396.61 USD exceeds 300.00 USD" in over.stdout
    )
    assert "Prices: transcribed by hand from the AWS Price List bulk offer files" in over.stdout
    within = invoke(tmp_path, "--pulumi-json", plan, "--output", "ndjson", "--budget", "500")
    assert within.exit_code == 0
    lines = [json.loads(line) for line in within.stdout.splitlines()]
    assert len(lines) == 11 and all("monthly" in line for line in lines)


def test_one_unknown_resource_fails_the_budget_and_is_named(tmp_path: Path):
    for flag, plan in (
        ("--pulumi-json", PULUMI / "aws-unknown-preview.json"),
        ("--terraform-json", TERRAFORM / "aws-unknown-plan.json"),
    ):
        failed = invoke(tmp_path, flag, str(plan), "--budget", "1000")
        assert failed.exit_code == 1, failed.output
        name = "sessions" if flag == "--pulumi-json" else "aws_dynamodb_table.sessions"
        assert f"unpriced: {name} (" in failed.stderr and "--allow-unpriced" in failed.stderr
        assert f"1 resource(s) have no price: {name}" in failed.stdout
        allowed = invoke(tmp_path, flag, str(plan), "--budget", "1000", "--allow-unpriced")
        assert allowed.exit_code == 0, allowed.output


def test_terraform_and_pulumi_plans_of_the_same_resources_give_the_same_total(tmp_path: Path):
    for pulumi_plan, tf_plan, expected in (
        ("aws-preview.json", "aws-plan.json", "396.61"),
        ("aws-coverage-preview.json", "aws-coverage-plan.json", "1999.35"),
    ):
        p = invoke(
            tmp_path,
            "--pulumi-json",
            str(PULUMI / pulumi_plan),
            "--usage-file",
            USAGE,
            "--output",
            "json",
        )
        t = invoke(
            tmp_path,
            "--terraform-json",
            str(TERRAFORM / tf_plan),
            "--usage-file",
            USAGE,
            "--output",
            "json",
        )
        assert p.exit_code == 0 and t.exit_code == 0, p.output + t.output
        if (
            pulumi_plan == "aws-preview.json"
        ):  # the usage file adds the NAT's data and the ALB's capacity units
            expected = str(Decimal(expected) + Decimal("22.50") + Decimal("11.68"))
        assert total(p) == total(t) == Decimal(expected)
    base = invoke(
        tmp_path,
        "--terraform-json",
        str(TERRAFORM / "aws-coverage-plan.json"),
        "--usage-file",
        USAGE,
        "--compare-to",
        str(TERRAFORM / "aws-plan.json"),
        "--output",
        "json",
    )
    pulumi_base = invoke(
        tmp_path,
        "--pulumi-json",
        str(PULUMI / "aws-coverage-preview.json"),
        "--usage-file",
        USAGE,
        "--compare-to",
        str(PULUMI / "aws-preview.json"),
        "--output",
        "json",
    )
    b, pb = (
        json.loads(base.stdout)["summary"]["base"],
        json.loads(pulumi_base.stdout)["summary"]["base"],
    )
    assert (
        Decimal(b["delta"]) == Decimal(pb["delta"]) == Decimal("1999.345035") - Decimal("430.787")
    )


def test_a_policy_file_reports_every_violation(tmp_path: Path):
    result = invoke(
        tmp_path,
        "--pulumi-json",
        str(PULUMI / "aws-coverage-preview.json"),
        "--usage-file",
        USAGE,
        "--policy",
        str(PRICING / "policy.yaml"),
        "--output",
        "json",
    )
    assert result.exit_code == 1
    gate = json.loads(result.stdout)["gate"]
    assert not gate["passed"] and gate["checked"] == "policy policy.yaml"
    assert {(v["rule"], v.get("resource")) for v in gate["violations"]} >= {
        ("resource_cap", "orders"),
        ("resource_cap", "analytics"),
        ("required_tags", "reports"),
        ("max_increase", None),
    }
    assert (
        "resource_cap: orders costs 909.88 USD/month, over the cap of 400.00 USD" in result.stderr
    )


def test_currency_converts_at_the_stated_dates_rate_in_every_output(tmp_path: Path):
    args = [
        "--pulumi-json",
        str(PULUMI / "aws-preview.json"),
        "--currency",
        "EUR",
        "--fx-date",
        "2024-09-01",
        "--fx-rates",
        str(PRICING / "ecb-rates-sample.csv"),
    ]
    as_json = invoke(tmp_path, *args, "--output", "json")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    rate = doc["summary"]["exchangeRate"]
    assert (
        rate["date"] == "2024-08-30" and rate["asked"] == "2024-09-01"
    )  # a Sunday: Friday's ECB rate
    assert doc["summary"]["currency"] == "EUR" and doc["summary"]["unpriced"] == 0
    assert total(as_json) == (Decimal("396.607") / Decimal("1.1087")).quantize(Decimal("0.01"))
    table = invoke(tmp_path, *args)
    assert "Total monthly: 357.72 EUR" in table.stdout
    assert (
        "Converted at 1 USD = 0.901957 EUR, rate of 2024-08-30 (latest on or before 2024-09-01)"
        in table.stdout
        and "rate of 2024-08-30" in table.stdout
    )
    md = invoke(tmp_path, *args, "--output", "markdown")
    assert (
        "Converted at 1 USD = " in md.stdout
        and "rate of 2024-08-30 (latest on or before 2024-09-01)" in md.stdout
    )
    nd = invoke(tmp_path, *args, "--output", "ndjson")
    assert all(
        "rate of 2024-08-30" in json.loads(line)["exchangeRate"] for line in nd.stdout.splitlines()
    )
    missing = invoke(
        tmp_path,
        *args[:4],
        "--fx-date",
        "2020-01-01",
        "--fx-rates",
        str(PRICING / "ecb-rates-sample.csv"),
    )
    assert missing.exit_code == 2 and "no exchange rate from USD to EUR" in missing.stderr


def test_fx_import_then_cost_projected_reads_the_rate_table(tmp_path: Path, database_url: str):
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(tmp_path / "home"),
        "FINFOCUS_DATABASE_URL": database_url,
    }
    env.pop("FINFOCUS_READER_DATABASE_URL", None)

    def finfocus(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "finfocus.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    none_yet = finfocus(
        "cost", "projected", "--pulumi-json", str(PULUMI / "aws-preview.json"), "--currency", "EUR"
    )
    assert none_yet.returncode == 2 and "finfocus fx import" in none_yet.stderr
    imported = finfocus("fx", "import", str(PRICING / "ecb-rates-sample.csv"))
    assert imported.returncode == 0, imported.stderr
    assert (
        "imported 90 rates of 30 currencies per 1 EUR, 2024-08-30 to 2024-09-03" in imported.stdout
    )
    again = finfocus(
        "fx", "import", str(PRICING / "rates-long.csv"), "--source", "treasury"
    )  # replaces 2024-09-02
    assert again.returncode == 0, again.stderr
    shown = finfocus("fx", "show", "--date", "2024-09-02", "--currency", "usd")
    assert "1.1066" in shown.stdout and "treasury" in shown.stdout
    doc = finfocus(
        "cost",
        "projected",
        "--pulumi-json",
        str(PULUMI / "aws-preview.json"),
        "--currency",
        "EUR",
        "--fx-date",
        "2024-09-02",
        "--output",
        "json",
    )
    assert doc.returncode == 0, doc.stderr
    summary = json.loads(doc.stdout)["summary"]
    assert (
        summary["exchangeRate"]["date"] == "2024-09-02"
        and summary["exchangeRate"]["source"] == "treasury"
    )
    assert Decimal(summary["totalMonthly"]).quantize(Decimal("0.01")) == (
        Decimal("396.607") / Decimal("1.1066")
    ).quantize(Decimal("0.01"))
    assert "converted at 1 USD = " in doc.stderr


def test_usage_errors_exit_2_with_a_clear_message(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = invoke(tmp_path, "--pulumi-json", str(bad))
    assert r.exit_code == 2 and "is not JSON" in r.stderr
    bad.write_text('{"hello": 1}')
    assert "no steps[]" in invoke(tmp_path, "--pulumi-json", str(bad)).stderr
    assert "no resource_changes[]" in invoke(tmp_path, "--terraform-json", str(bad)).stderr
    assert (
        invoke(
            tmp_path, "--pulumi-json", str(PULUMI / "gcp-preview.json"), "--budget", "abc"
        ).exit_code
        == 2
    )
    both = invoke(tmp_path, "--pulumi-json", str(bad), "--terraform-json", str(bad))
    assert both.exit_code == 2 and "give one plan" in both.stderr
    policy = tmp_path / "p.yaml"
    policy.write_text("max_total: 3\n")
    r = invoke(tmp_path, "--pulumi-json", str(PULUMI / "aws-preview.json"), "--policy", str(policy))
    assert r.exit_code == 2 and "max_total: Extra inputs are not permitted" in r.stderr


def test_prices_show_names_each_snapshots_source_and_age(tmp_path: Path):
    result = CliRunner().invoke(
        cli, ["prices", "show", "--output", "json"], env={"FINFOCUS_HOME": str(tmp_path / "home")}
    )
    assert result.exit_code == 0, result.output
    snapshots = {s["cloud"]: s for s in json.loads(result.stdout)["snapshots"]}
    assert set(snapshots) == {"aws", "azure", "gcp"}
    assert all(
        s["bundled"] and s["effectiveDate"] and s["ageDays"] is not None and s["sourceUrl"]
        for s in snapshots.values()
    )


def test_prices_record_puts_the_snapshot_in_the_catalog_with_its_effective_dates(
    tmp_path: Path, database_url: str
):
    env = {
        **os.environ,
        "FINFOCUS_HOME": str(tmp_path / "home"),
        "FINFOCUS_DATABASE_URL": database_url,
    }
    env.pop("FINFOCUS_READER_DATABASE_URL", None)

    def finfocus(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "finfocus.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    n = len(
        json.loads(
            (Path(__file__).resolve().parents[2] / "services/pricing/prices/aws.json").read_text()
        )["prices"]
    )
    recorded = finfocus("prices", "record", "aws")
    assert recorded.returncode == 0, recorded.stderr
    assert (
        f"aws: {n} new or changed, 0 unchanged in the catalog (source list:aws" in recorded.stdout
    )
    again = finfocus("prices", "record", "aws")
    assert f"aws: 0 new or changed, {n} unchanged" in again.stdout
    shown = finfocus(
        "catalog",
        "show",
        "--provider",
        "AWS",
        "--sku",
        "c5.large",
        "--region",
        "us-east-1",
        "-o",
        "json",
    )
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)["prices"]
    assert Decimal(row["unit_price"]) == Decimal("0.085") and row["source"] == "list:aws"
    assert row["effective_from"].startswith("2024-09-01")


def test_an_installed_plugin_is_asked_before_the_snapshot(tmp_path: Path):
    import shutil

    shutil.copytree(
        PRICING / "plugins" / "flat-prices" / "1.0.0",
        tmp_path / "home" / "plugins" / "flat-prices" / "1.0.0",
    )
    result = invoke(tmp_path, "--pulumi-json", str(PULUMI / "aws-preview.json"), "--output", "json")
    assert result.exit_code == 0, result.output
    api = next(r for r in json.loads(result.stdout)["resources"] if r["name"] == "api")
    # before: m5.large at the plugin's 0.1/h (73.00) + the 8 GB root volume from the snapshot
    assert Decimal(api["before"]) == Decimal("73.8") and Decimal(api["monthly"]) == Decimal(
        "140.96"
    )
    assert (tmp_path / "home" / "cache" / "plugin-prices.json").exists()
    no_plugins = invoke(
        tmp_path,
        "--pulumi-json",
        str(PULUMI / "aws-preview.json"),
        "--output",
        "json",
        "--no-plugins",
    )
    api = next(r for r in json.loads(no_plugins.stdout)["resources"] if r["name"] == "api")
    assert Decimal(api["before"]) == Decimal("70.88")
