"""Offer-file index (aws-public), OpenCost answers, plugin manifests and the built-in registry."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from services.pricing.host import discover, load_manifest
from services.pricing.plugins import BUILTINS
from services.pricing.plugins.aws_public.offers import OfferIndex
from services.pricing.plugins.opencost.client import parse_allocations

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pricing"


def test_offer_index_keeps_linux_shared_on_demand_and_first_tiers():
    index = OfferIndex.load()
    assert index.lookup("AmazonEC2", "t3.micro", "us-east-1").price == Decimal(
        "0.0104"
    )  # not the Windows decoy
    assert index.lookup("Amazon Elastic Compute Cloud", "m5.large", "us-east-1").price == Decimal(
        "0.096"
    )  # not Dedicated
    assert index.lookup("AmazonS3", "standard", "us-east-1").price == Decimal(
        "0.023"
    )  # first 50 TB tier
    assert index.lookup("AmazonRDS", "db.t3.micro", "us-east-1").price == Decimal(
        "0.017"
    )  # MySQL, Single-AZ
    assert index.lookup("AmazonEC2", "gp3", "eu-west-1").unit == "GB-Mo"
    sku = index.lookup("AmazonEC2", "t3.micro", "us-east-1").sku
    assert index.lookup("", sku, "").price == Decimal("0.0104")  # by the offer's own SKU
    assert index.lookup("AmazonEC2", "t3.nano", "us-east-1") is None


def test_opencost_answers_are_parsed_without_floats():
    allocations = parse_allocations((FIXTURES / "opencost" / "allocation-pod.json").read_bytes())
    assert [a.name for a in allocations] == [
        "default/web-7d4b9c6f5-x2k8p",
        "kube-system/coredns-5dd5756b68-7xq9z",
    ]
    assert allocations[0].total == Decimal("0.441734") and allocations[0].parts[
        "pvCost"
    ] == Decimal("0.010958")
    with pytest.raises(ValueError, match="not an OpenCost"):
        parse_allocations(b'{"code": 500, "message": "boom"}')


def test_plugin_fixtures_are_discovered_newest_version_first(tmp_path: Path):
    refs, problems = discover(FIXTURES / "plugins")
    assert problems == [] and {r.name for r in refs} == {
        "flat-prices",
        "hung",
        "crashing",
        "garbage",
    }
    for version in ("1.2.0", "1.10.0"):
        d = tmp_path / "p" / version
        d.mkdir(parents=True)
        (d / "plugin.yaml").write_text(
            f"name: p\nversion: {version}\ncommand: ['{{python}}', 'x.py']\n"
        )
    refs, _ = discover(tmp_path)
    assert [r.manifest.version for r in refs] == ["1.10.0"]
    (tmp_path / "p" / "1.10.0" / "plugin.yaml").write_text(
        "name: p\nversion: 1.10.0\ncommand: [x]\nprotocol: 2\n"
    )
    with pytest.raises(ValueError, match="protocol 2"):
        load_manifest(tmp_path / "p" / "1.10.0")


def test_builtin_registry_follows_the_conventions():
    for name, builtin in BUILTINS.items():
        assert name == name.lower() and " " not in name and "_" not in name
        assert (
            issubclass(builtin.params, BaseModel)
            and builtin.params.model_config.get("extra") == "forbid"
        )
        assert builtin.description
