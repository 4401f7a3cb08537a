"""`finfocus cost projected` end to end: the CLI starts the aws-public plugin process."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finfocus.cli import app as cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def invoke(tmp_path: Path, *args: str):
    env = {"FINFOCUS_HOME": str(tmp_path / "home")}
    return CliRunner().invoke(cli, ["cost", "projected", *args], env=env)


def test_projected_json_through_the_aws_public_plugin(tmp_path: Path):
    result = invoke(tmp_path, "--pulumi-json", str(FIXTURES / "pulumi" / "aws-preview.json"), "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert Decimal(doc["summary"]["totalMonthly"]).quantize(Decimal("0.01")) == Decimal("394.21")
    sources = {r["name"]: r["priceSource"] for r in doc["resources"]}
    assert sources["web"] == "plugin:aws-public" and sources["app-role"] == "none"


def test_budget_exceeded_exits_non_zero_and_markdown_is_a_comment(tmp_path: Path):
    plan = str(FIXTURES / "pulumi" / "aws-preview.json")
    over = invoke(tmp_path, "--pulumi-json", plan, "--output", "markdown", "--budget", "300")
    assert over.exit_code == 1
    assert over.stdout.startswith("## FinFocus cost estimate") and "over budget" in over.stdout
    within = invoke(tmp_path, "--pulumi-json", plan, "--output", "ndjson", "--budget", "500")
    assert within.exit_code == 0
    lines = [json.loads(line) for line in within.stdout.splitlines()]
    assert len(lines) == 11 and all("monthly" in line for line in lines)


def test_specs_only_pricing_for_azure_and_usage_errors(tmp_path: Path):
    ok = invoke(tmp_path, "--pulumi-json", str(FIXTURES / "pulumi" / "azure-preview.json"),
                "--specs", str(FIXTURES / "pricing" / "specs"), "--no-plugins", "--output", "json")
    assert ok.exit_code == 0, ok.output
    assert Decimal(json.loads(ok.stdout)["summary"]["totalMonthly"]).quantize(Decimal("0.01")) == Decimal("108.04")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert invoke(tmp_path, "--pulumi-json", str(bad)).exit_code == 2
    bad.write_text('{"hello": 1}')
    assert invoke(tmp_path, "--pulumi-json", str(bad), "--no-plugins").exit_code == 2
    assert invoke(tmp_path, "--pulumi-json", str(FIXTURES / "pulumi" / "gcp-preview.json"), "--budget", "abc").exit_code == 2


def test_a_warm_run_answers_from_the_price_cache_without_starting_plugins(tmp_path: Path):
    plan = str(FIXTURES / "pulumi" / "aws-preview.json")
    first = invoke(tmp_path, "--pulumi-json", plan, "--output", "json")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "home" / "cache" / "plugin-prices.json").exists()
    # a plugin that cannot start any more: the warm run still prices everything from the cache
    env = {"FINFOCUS_HOME": str(tmp_path / "home"), "FINFOCUS_PRICING_AWS_OFFERS_DIR": str(tmp_path / "missing")}
    warm = CliRunner().invoke(cli, ["cost", "projected", "--pulumi-json", plan, "--output", "json"], env=env)
    assert warm.exit_code == 0, warm.output
    doc = json.loads(warm.stdout)
    assert doc["summary"]["totalMonthly"] == json.loads(first.stdout)["summary"]["totalMonthly"]
    assert "pluginFailures" not in doc["summary"]
