"""Projected cost of Pulumi plans, priced at 730 h/month and checked to the cent (no sockets:
the aws-public offer index answers in process, the same data its plugin serves)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from finfocus.cli.cost import markdown_report
from services.pricing.domain import Quote, SpecBook
from services.pricing.plugins.aws_public.offers import OfferIndex
from services.pricing.projected import map_resource, plan_resources, price_plan
from services.pricing.specs import load_specs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INDEX = OfferIndex.load()


async def offer_quotes(lines):
    out = []
    for line in lines:
        hit = INDEX.lookup(line.service, line.sku or line.resource_type or "", line.region or "")
        out.append([Quote("plugin:aws-public", hit.price, "USD", hit.unit) if hit and line.currency == "USD" else None])
    return out


def cents(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def plan(name: str) -> dict:
    return json.loads((FIXTURES / "pulumi" / name).read_text())


SPECS, _ = load_specs(FIXTURES / "pricing" / "specs")


async def test_aws_plan_is_priced_to_the_cent_with_before_after_and_delta():
    doc = await price_plan(plan("aws-preview.json"), specs=SpecBook(), quotes=offer_quotes)
    by_name = {r["name"]: r for r in doc["resources"]}
    expected = {
        "web": "7.59",         # t3.micro 0.0104 x 730
        "arm-worker": "49.64",  # c6g.large 0.068 x 730
        "api": "140.16",       # m5.xlarge 0.192 x 730 (was m5.large 70.08)
        "legacy": "0.00",      # deleted t3.medium
        "data": "8.00",        # gp3 100 GB x 0.08
        "logs": "5.00",        # gp2 50 GB x 0.10, unchanged
        "db": "132.24",        # db.m5.large PostgreSQL 0.178 x 730 + 20 GB gp2 x 0.115
        "assets": "2.30",      # S3 Standard 100 GB x 0.023
        "front": "16.43",      # ALB 0.0225 x 730
        "egress": "32.85",     # NAT gateway 0.045 x 730
    }
    assert {k: str(cents(by_name[k]["monthly"])) for k in expected} == expected
    assert cents(by_name["api"]["delta"]) == Decimal("70.08")
    assert cents(by_name["legacy"]["delta"]) == Decimal("-30.37")
    assert Decimal(by_name["logs"]["delta"]) == 0
    s = doc["summary"]
    assert cents(s["totalMonthly"]) == Decimal("394.21")
    assert cents(s["before"]) == Decimal("105.45") and cents(s["delta"]) == Decimal("288.76")
    assert s["currency"] == "USD" and s["byProvider"] == {"AWS": s["totalMonthly"]}
    assert cents(s["byService"]["AmazonRDS"]) == Decimal("132.24")
    # providers and component resources are skipped; a free or unknown type is listed with its reason
    assert "tier" not in by_name and not any(r["type"].startswith("pulumi:") for r in doc["resources"])
    assert by_name["app-role"]["priceSource"] == "none" and "aws:iam/role:Role" in by_name["app-role"]["reason"]
    assert s["unpriced"] == 1


async def test_azure_and_gcp_plans_are_priced_from_specs():
    azure = await price_plan(plan("azure-preview.json"), specs=SPECS, quotes=None)
    assert {r["name"]: str(cents(r["monthly"])) for r in azure["resources"] if r["priceSource"] != "none"} == {
        "app-vm": "30.37", "batch-vm": "70.08", "jump": "7.59",
    }
    assert cents(azure["summary"]["totalMonthly"]) == Decimal("108.04")
    assert cents(azure["summary"]["delta"]) == Decimal("77.67")  # jump went from B2s (30.37) to B1s
    assert azure["resources"][0]["priceSource"] == "spec:azure/virtual-machines.yaml"
    gcp = await price_plan(plan("gcp-preview.json"), specs=SPECS, quotes=None)
    rows = {r["name"]: r for r in gcp["resources"]}
    assert cents(rows["web"]["monthly"]) == Decimal("24.46")  # e2-medium 0.033503 x 730
    assert cents(rows["worker"]["monthly"]) == Decimal("70.90")  # n2-standard-2 0.097118 x 730
    assert cents(rows["scratch"]["monthly"]) == Decimal("17.00")  # pd-ssd 100 GB x 0.17
    assert rows["gpu-box"]["priceSource"] == "none" and "a2-highgpu-1g" in rows["gpu-box"]["reason"]
    assert cents(gcp["summary"]["totalMonthly"]) == Decimal("112.35")
    assert gcp["summary"]["byProvider"].keys() == {"Google Cloud"}


def test_regions_come_from_zones_arns_or_the_default():
    assert map_resource("aws:ec2/instance:Instance", {"instanceType": "t3.micro", "availabilityZone": "eu-west-1b"}).components[0].region == "eu-west-1"
    assert map_resource("aws:ec2/instance:Instance", {"instanceType": "t3.micro", "arn": "arn:aws:ec2:us-west-2:1:instance/i-1"}).components[0].region == "us-west-2"
    assert map_resource("aws:ec2/instance:Instance", {"instanceType": "t3.micro"}, aws_region="us-east-1").components[0].region == "us-east-1"
    assert map_resource("gcp:compute/instance:Instance", {"machineType": "e2-medium", "zone": "europe-west4-a"}).components[0].region == "europe-west4"
    assert map_resource("aws:ec2/instance:Instance", {}).reason == "instanceType is unknown"
    assert "finfocus:storage-gb" in map_resource("aws:s3/bucket:Bucket", {"bucket": "b"}).reason


def test_replacement_steps_merge_into_one_resource():
    urn = "urn:pulumi:dev::p::aws:ec2/instance:Instance::web"
    state = lambda t: {"urn": urn, "custom": True, "type": "aws:ec2/instance:Instance", "inputs": {"instanceType": t}}  # noqa: E731
    doc = {"steps": [
        {"op": "create-replacement", "urn": urn, "newState": state("m5.large"), "oldState": state("t3.micro")},
        {"op": "replace", "urn": urn, "newState": state("m5.large"), "oldState": state("t3.micro")},
        {"op": "delete-replaced", "urn": urn, "oldState": state("t3.micro")},
    ]}
    resources = plan_resources(doc, aws_region="us-east-1")
    assert len(resources) == 1 and resources[0].op == "replace"
    assert resources[0].before.components[0].sku == "t3.micro"
    assert resources[0].after.components[0].sku == "m5.large"
    # without the replace step, the two halves still make one resource
    halves = plan_resources({"steps": [doc["steps"][0], doc["steps"][2]]}, aws_region="us-east-1")
    assert len(halves) == 1 and halves[0].op == "replace"
    assert halves[0].before.components[0].sku == "t3.micro" and halves[0].after.components[0].sku == "m5.large"


def test_not_a_plan_is_a_clear_error():
    with pytest.raises(ValueError, match="steps"):
        plan_resources({"hello": 1})


async def test_markdown_comment_shows_before_after_delta_and_unpriced():
    doc = await price_plan(plan("aws-preview.json"), specs=SpecBook(), quotes=offer_quotes)
    text = markdown_report(doc, Decimal("300"))
    assert "105.45 → 394.21 USD (+288.76 USD)" in text
    assert "❌ over budget of 300.00 USD" in text
    assert "| `api` | `aws:ec2/instance:Instance` | update | m5.xlarge | us-east-1 | 70.08 | 140.16 | +70.08 |" in text
    assert "`app-role`" in text and "without a price" in text
