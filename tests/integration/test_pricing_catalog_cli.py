"""`finfocus plugin list|validate|install` and `finfocus catalog refresh|show` (price history)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finfocus.cli import app as cli
from services.pricing.plugins.aws_public.offers import DEFAULT_DIR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pricing"


def ff(env: dict, *args: str):
    return CliRunner().invoke(cli, list(args), env=env)


def test_plugin_install_list_and_validate(tmp_path: Path):
    env = {
        "FINFOCUS_HOME": str(tmp_path / "home"),
        "FINFOCUS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    plugin = FIXTURES / "plugins" / "flat-prices" / "1.0.0"
    assert ff(env, "plugin", "install", str(plugin)).exit_code == 0
    again = ff(env, "plugin", "install", str(plugin))
    assert again.exit_code == 1 and "already installed" in again.output
    assert ff(env, "plugin", "install", str(plugin), "--force").exit_code == 0
    listed = json.loads(ff(env, "plugin", "list", "--output", "json").stdout)
    names = {(p["name"], p["kind"]) for p in listed["plugins"]}
    assert {
        ("flat-prices", "installed"),
        ("aws-public", "builtin"),
        ("opencost", "builtin"),
    } <= names

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "plugin.yaml").write_text("name: Not_Kebab\nversion: 1\ncommand: []\n")
    result = ff(env, "plugin", "validate", str(broken), "--output", "json")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["results"][0]["error"]
    assert "name" in errors and "command" in errors
    assert ff(env, "plugin", "install", str(broken)).exit_code == 1

    spec = tmp_path / "bad-spec.yaml"
    spec.write_text("provider: AWS\nservice: S3\nunit: GB\nprice: lots\ncurrency: USD\n")
    bad = ff(env, "plugin", "validate", str(spec), "--output", "json")
    assert bad.exit_code == 1 and "price" in json.loads(bad.stdout)["results"][0]["error"]
    assert ff(env, "plugin", "validate", str(FIXTURES / "specs")).exit_code == 0


def test_catalog_refresh_keeps_price_history(tmp_path: Path, database_url: str):
    offers = tmp_path / "offers"
    shutil.copytree(DEFAULT_DIR, offers)
    env = {
        "FINFOCUS_HOME": str(tmp_path / "home"),
        "FINFOCUS_DATABASE_URL": database_url,
        "FINFOCUS_PRICING_BUILTIN_PLUGINS": "aws-public",
        "FINFOCUS_PRICING_AWS_OFFERS_DIR": str(offers),
    }
    first = ff(env, "catalog", "refresh", "--output", "json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)["plugins"]["aws-public"]
    assert report["prices"] > 30 and report["changed"] == report["prices"]

    ec2 = offers / "AmazonEC2.json"
    ec2.write_text(ec2.read_text().replace('"0.0104000000"', '"0.0110000000"'))
    second = json.loads(ff(env, "catalog", "refresh", "--output", "json").stdout)["plugins"][
        "aws-public"
    ]
    assert (
        second["changed"] == 2 and second["unchanged"] == report["prices"] - 2
    )  # t3.micro in 2 regions

    current = json.loads(
        ff(
            env, "catalog", "show", "--sku", "t3.micro", "--region", "us-east-1", "--output", "json"
        ).stdout
    )
    assert [p["unit_price"] for p in current["prices"]] == ["0.011"]
    history = json.loads(
        ff(
            env,
            "catalog",
            "show",
            "--sku",
            "t3.micro",
            "--region",
            "us-east-1",
            "--history",
            "--output",
            "json",
        ).stdout
    )["prices"]
    assert [(p["unit_price"], p["current"]) for p in history] == [
        ("0.0104", False),
        ("0.011", True),
    ]
    assert history[0]["effective_to"] == history[1]["effective_from"]


def test_reading_before_the_pricing_schema_exists_is_a_clear_error(
    tmp_path: Path, database_url: str
):
    env = {"FINFOCUS_HOME": str(tmp_path / "home"), "FINFOCUS_DATABASE_URL": database_url}
    cost = ff(env, "cost", "actual", "--output", "json")
    assert cost.exit_code == 1 and "no cost lines yet" in cost.output
    show = ff(env, "catalog", "show")
    assert show.exit_code == 1 and "catalog refresh" in show.output
    usage = ff(env, "cost", "actual", "--group-by", "colour")
    assert usage.exit_code == 2 and "unknown --group-by" in usage.output
