"""Projected cost of Pulumi and Terraform plans from the bundled price snapshot, priced at
730 h/month and checked to the cent against the published list prices."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from services.pricing import terraform
from services.pricing.domain import Quote, SpecBook
from services.pricing.projected import (
    compare_to_base,
    map_resource,
    plan_resources,
    price_plan,
    price_resources,
)
from services.pricing.snapshot import BUNDLED_DIR, PriceSnapshot
from services.pricing.specs import load_specs
from services.pricing.usage import UsageFile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SNAPSHOT = PriceSnapshot.load(BUNDLED_DIR)
USAGE = UsageFile.load(FIXTURES / "pricing" / "infracost-usage.yml")
SPECS, _ = load_specs(FIXTURES / "pricing" / "specs")


def cents(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def load(kind: str, name: str) -> dict:
    return json.loads((FIXTURES / kind / name).read_text())


async def pulumi(name: str, **kw) -> dict:
    return await price_plan(
        load("pulumi", name),
        specs=kw.pop("specs", SpecBook()),
        quotes=kw.pop("quotes", None),
        snapshot=kw.pop("snapshot", SNAPSHOT),
        **kw,
    )


async def tf(name: str, usage=None, **kw) -> dict:
    resources = terraform.plan_resources(load("terraform", name), usage=usage)
    return await price_resources(
        resources, specs=SpecBook(), quotes=None, snapshot=SNAPSHOT, plan_format="terraform", **kw
    )


async def test_aws_plan_prices_fully_with_root_volumes_as_components():
    doc = await pulumi("aws-preview.json")
    rows = {r["name"]: r for r in doc["resources"]}
    expected = {
        "web": "8.39",  # t3.micro 0.0104 x 730 + 8 GB gp2 root x 0.10
        "arm-worker": "50.44",  # c6g.large 0.068 x 730 + root 0.80
        "api": "140.96",  # m5.xlarge 0.192 x 730 + root (was m5.large 70.08 + 0.80)
        "legacy": "0.00",  # deleted t3.medium
        "data": "8.00",  # gp3 100 GB x 0.08
        "logs": "5.00",  # gp2 50 GB x 0.10, unchanged
        "db": "132.24",  # db.m5.large PostgreSQL 0.178 x 730 + 20 GB gp2 x 0.115
        "assets": "2.30",  # S3 Standard 100 GB x 0.023
        "front": "16.43",  # ALB 0.0225 x 730 (capacity units: usage-based, noted)
        "egress": "32.85",  # NAT gateway 0.045 x 730
        "app-role": "0.00",  # IAM: free
    }
    assert {k: str(cents(rows[k]["monthly"])) for k in expected} == expected
    assert [c["label"] for c in rows["web"]["components"]] == ["instance hours", "root volume"]
    assert "8 GB assumed" in rows["web"]["notes"][0]
    assert rows["app-role"]["priceSource"] == "free"
    assert cents(rows["api"]["delta"]) == Decimal("70.08")
    assert cents(rows["legacy"]["delta"]) == Decimal("-31.17")
    s = doc["summary"]
    assert s["unpriced"] == 0 and s["unpricedResources"] == []
    assert cents(s["totalMonthly"]) == Decimal("396.61")
    assert cents(s["before"]) == Decimal("107.05") and cents(s["delta"]) == Decimal("289.56")
    assert {r["priceSource"] for r in doc["resources"]} == {"snapshot:aws", "free"}
    [data] = s["priceData"]
    assert (
        data["cloud"] == "aws"
        and data["effectiveDate"] == "2024-09-01"
        and "Price List" in data["source"]
    )
    assert "tier" not in rows and not any(r["type"].startswith("pulumi:") for r in doc["resources"])


async def test_azure_and_gcp_plans_price_fully_from_the_bundled_snapshot():
    azure = await pulumi("azure-preview.json")
    assert {r["name"]: str(cents(r["monthly"])) for r in azure["resources"]} == {
        "app-vm": "30.37",
        "batch-vm": "70.08",
        "jump": "7.59",
        "rg-portal": "0.00",
    }
    assert azure["summary"]["unpriced"] == 0 and cents(azure["summary"]["totalMonthly"]) == Decimal(
        "108.04"
    )
    assert cents(azure["summary"]["delta"]) == Decimal("77.67")  # jump went from B2s (30.37) to B1s
    assert azure["resources"][0]["priceSource"] == "snapshot:azure"
    gcp = await pulumi("gcp-preview.json")
    rows = {r["name"]: r for r in gcp["resources"]}
    assert gcp["summary"]["unpriced"] == 0
    # e2-medium: 1 vCPU x 0.021811 + 4 GiB x 0.002923 = 0.033503/h; boot disk 10 GB pd-standard x 0.04
    assert cents(rows["web"]["monthly"]) == Decimal("24.86")
    assert cents(rows["worker"]["monthly"]) == Decimal("70.90")  # n2-standard-2 0.097118 x 730
    assert cents(rows["scratch"]["monthly"]) == Decimal("17.00")  # pd-ssd 100 GB x 0.17
    # a2-highgpu-1g: 12 x 0.031611 + 85 x 0.004237 + 1 A100 x 2.933908 = 3.673385/h
    assert Decimal(rows["gpu-box"]["components"][0]["unitPrice"]) == Decimal("3.673385")
    assert cents(rows["gpu-box"]["monthly"]) == Decimal("2681.57")
    assert gcp["summary"]["byProvider"].keys() == {"Google Cloud"}


async def test_specs_come_before_the_snapshot_and_plugins_before_specs():
    azure = await pulumi("azure-preview.json", specs=SPECS)
    assert azure["resources"][0]["priceSource"] == "spec:azure/virtual-machines.yaml"

    async def plugin(lines):
        return [
            [Quote("plugin:negotiated", Decimal("0.005"), "USD", "Hrs")]
            if line.sku == "Standard_B2s"
            else [None]
            for line in lines
        ]

    doc = await pulumi("azure-preview.json", specs=SPECS, quotes=plugin)
    rows = {r["name"]: r for r in doc["resources"]}
    assert rows["app-vm"]["priceSource"] == "plugin:negotiated" and cents(
        rows["app-vm"]["monthly"]
    ) == Decimal("3.65")


async def test_c5_r6i_rds_multi_az_and_ebs_root_volumes_price_fully():
    doc = await pulumi("aws-coverage-preview.json", usage=USAGE)
    rows = {r["name"]: r for r in doc["resources"]}
    assert doc["summary"]["unpriced"] == 0
    api = {c["label"]: c["monthly"] for c in rows["api"]["components"]}
    assert cents(api["instance hours"]) == Decimal("62.05")  # c5.large 0.085 x 730
    assert cents(api["root volume"]) == Decimal("2.40")  # 30 GB gp3 x 0.08
    analytics = {c["label"]: c["monthly"] for c in rows["analytics"]["components"]}
    assert cents(analytics["instance hours"]) == Decimal("367.92")  # r6i.2xlarge 0.504 x 730
    assert cents(analytics["root volume IOPS above 3,000"]) == Decimal("15.00")  # 3,000 x 0.005
    assert cents(analytics["root volume throughput above 125 MiB/s"]) == Decimal(
        "5.00"
    )  # 125 x 0.04
    assert cents(analytics["attached volume /dev/sdf provisioned IOPS"]) == Decimal(
        "130.00"
    )  # io1 2,000 x 0.065
    orders = {c["label"]: c["monthly"] for c in rows["orders"]["components"]}
    assert cents(orders["postgresql instance hours (Multi-AZ)"]) == Decimal(
        "259.88"
    )  # 2 x 0.178 x 730
    assert cents(orders["database storage (io1) (Multi-AZ)"]) == Decimal("50.00")  # 200 GB x 0.25
    assert cents(orders["provisioned IOPS (Multi-AZ)"]) == Decimal("600.00")  # 3,000 x 0.20
    # usage file: 2,000 GB S3 Standard, 500 GB through the NAT, Lambda requests and GB-seconds
    assert cents(rows["reports"]["monthly"]) == Decimal("47.30")
    assert cents(rows["egress"]["monthly"]) == Decimal("55.35")
    # ALB capacity units: max(10/25, 1200/3000, 2 GB/h, 50/1000) = 2 LCU x 730 h x 0.008
    assert cents(rows["front"]["monthly"]) == Decimal("28.11")
    # Lambda arm64 512 MB: 3M requests x 0.2/M + 3M x 0.35 s x 0.5 GB x 0.0000133334
    assert cents(rows["thumbnails"]["monthly"]) == Decimal("7.60")
    assert cents(rows["general"]["monthly"]) == Decimal("225.24")  # 3 x m6i.large + 3 x 50 GB gp2
    assert cents(doc["summary"]["totalMonthly"]) == Decimal("1999.35")


async def test_terraform_plans_give_the_same_totals_as_the_pulumi_plans_of_the_same_resources():
    for pulumi_name, tf_name, usage in (
        ("aws-preview.json", "aws-plan.json", None),
        ("aws-coverage-preview.json", "aws-coverage-plan.json", USAGE),
        ("aws-unknown-preview.json", "aws-unknown-plan.json", None),
    ):
        p = await pulumi(pulumi_name, usage=usage)
        t = await tf(tf_name, usage=usage)
        for key in ("totalMonthly", "before", "delta", "unpriced"):
            assert Decimal(str(p["summary"][key])) == Decimal(str(t["summary"][key])), (
                tf_name,
                key,
            )
        assert sorted(Decimal(r["monthly"] or "-1") for r in p["resources"]) == sorted(
            Decimal(r["monthly"] or "-1") for r in t["resources"]
        )
    t = await tf("aws-plan.json")
    rows = {r["address"]: r for r in t["resources"]}
    assert rows["aws_instance.api"]["op"] == "update" and cents(
        rows["aws_instance.api"]["delta"]
    ) == Decimal("70.08")
    assert (
        rows["aws_ebs_volume.logs"]["op"] == "same"
        and rows["aws_instance.legacy"]["op"] == "delete"
    )
    assert "data.aws_caller_identity.current" not in rows  # data sources are read, not priced
    assert t["summary"]["planFormat"] == "terraform"


async def test_terraform_azure_and_gcp_plans_price_fully():
    azure = await tf("azure-plan.json", USAGE)
    rows = {r["address"]: r for r in azure["resources"]}
    assert azure["summary"]["unpriced"] == 0
    assert cents(rows["azurerm_linux_virtual_machine.app"]["monthly"]) == Decimal(
        "40.58"
    )  # B2s + P6 OS disk 10.21
    assert cents(rows["azurerm_managed_disk.data"]["monthly"]) == Decimal(
        "37.99"
    )  # 256 GiB Premium: P15
    assert rows["azurerm_linux_virtual_machine.batch"]["region"] == "eastus"  # "East US" normalised
    assert rows["azurerm_resource_group.portal"]["priceSource"] == "free"
    gcp = await tf("gcp-plan.json", USAGE)
    rows = {r["address"]: r for r in gcp["resources"]}
    assert gcp["summary"]["unpriced"] == 0
    assert cents(rows["google_compute_instance.gpu_box"]["monthly"]) == Decimal(
        "2715.57"
    )  # + 200 GB pd-ssd boot disk
    assert cents(rows["google_storage_bucket.media"]["monthly"]) == Decimal(
        "10.00"
    )  # 500 GB x 0.02 (usage file)
    # Cloud SQL, regional (HA): 2 vCPU x 0.0826 + 7.5 GiB x 0.014 per hour, 100 GB SSD x 0.34
    sql = {
        c["label"]: c["monthly"] for c in rows["google_sql_database_instance.orders"]["components"]
    }
    assert {k: str(cents(v)) for k, v in sql.items()} == {
        "2 vCPU hours (HA)": "120.60",
        "7.5 GiB memory hours (HA)": "76.65",
        "SSD storage (HA)": "34.00",
    }


async def test_an_unknown_resource_is_unpriced_and_named():
    doc = await pulumi("aws-unknown-preview.json")
    assert doc["summary"]["unpricedResources"] == ["sessions"]
    row = next(r for r in doc["resources"] if r["name"] == "sessions")
    assert row["priceSource"] == "none" and "aws:dynamodb/table:Table" in row["reason"]
    t = await tf("aws-unknown-plan.json")
    assert t["summary"]["unpricedResources"] == ["aws_dynamodb_table.sessions"]


async def test_the_diff_against_a_base_plan_works_for_both_formats():
    base = await tf("aws-plan.json")
    head = await tf("aws-coverage-plan.json", USAGE)
    doc = compare_to_base(head, base)
    b = doc["summary"]["base"]
    assert Decimal(b["totalMonthly"]) == Decimal(base["summary"]["totalMonthly"])
    assert Decimal(b["delta"]) == Decimal(head["summary"]["totalMonthly"]) - Decimal(
        base["summary"]["totalMonthly"]
    )
    assert "aws_instance.analytics" in b["added"] and "aws_instance.web" in b["removed"]
    p_base, p_head = (
        await pulumi("aws-preview.json"),
        await pulumi("aws-coverage-preview.json", usage=USAGE),
    )
    assert compare_to_base(p_head, p_base)["summary"]["base"]["delta"] == b["delta"]
    front = next(r for r in doc["resources"] if r["address"] == "aws_lb.front")
    assert cents(front["baseDelta"]) == Decimal("11.68")  # capacity units from the usage file


def test_regions_come_from_zones_arns_or_the_default():
    assert (
        map_resource(
            "aws:ec2/instance:Instance",
            {"instanceType": "t3.micro", "availabilityZone": "eu-west-1b"},
        )
        .components[0]
        .region
        == "eu-west-1"
    )
    assert (
        map_resource(
            "aws:ec2/instance:Instance",
            {"instanceType": "t3.micro", "arn": "arn:aws:ec2:us-west-2:1:instance/i-1"},
        )
        .components[0]
        .region
        == "us-west-2"
    )
    assert (
        map_resource(
            "aws:ec2/instance:Instance", {"instanceType": "t3.micro"}, aws_region="us-east-1"
        )
        .components[0]
        .region
        == "us-east-1"
    )
    assert (
        map_resource(
            "gcp:compute/instance:Instance", {"machineType": "e2-medium", "zone": "europe-west4-a"}
        )
        .components[0]
        .region
        == "europe-west4"
    )
    assert map_resource("aws:ec2/instance:Instance", {}).reason == "instanceType is unknown"
    assert "storage_gb" in map_resource("aws:s3/bucket:Bucket", {"bucket": "b"}).reason


def test_usage_file_errors_are_clear(tmp_path: Path):
    bad = tmp_path / "u.yml"
    bad.write_text("resource_usage:\n  aws_s3_bucket.x:\n    storage_gb: lots\n")
    with pytest.raises(ValueError, match=r"aws_s3_bucket.x.storage_gb = 'lots' is not a number"):
        UsageFile.load(bad)
    bad.write_text("resources: {}\n")
    with pytest.raises(ValueError, match="unknown key"):
        UsageFile.load(bad)


def test_replacement_steps_merge_into_one_resource():
    urn = "urn:pulumi:dev::p::aws:ec2/instance:Instance::web"
    state = lambda t: {  # noqa: E731
        "urn": urn,
        "custom": True,
        "type": "aws:ec2/instance:Instance",
        "inputs": {"instanceType": t},
    }
    doc = {
        "steps": [
            {
                "op": "create-replacement",
                "urn": urn,
                "newState": state("m5.large"),
                "oldState": state("t3.micro"),
            },
            {
                "op": "replace",
                "urn": urn,
                "newState": state("m5.large"),
                "oldState": state("t3.micro"),
            },
            {"op": "delete-replaced", "urn": urn, "oldState": state("t3.micro")},
        ]
    }
    resources = plan_resources(doc, aws_region="us-east-1")
    assert len(resources) == 1 and resources[0].op == "replace"
    assert resources[0].before.components[0].sku == "t3.micro"
    assert resources[0].after.components[0].sku == "m5.large"
    halves = plan_resources({"steps": [doc["steps"][0], doc["steps"][2]]}, aws_region="us-east-1")
    assert len(halves) == 1 and halves[0].op == "replace"
    tf_replace = {
        "resource_changes": [
            {
                "address": "aws_instance.web",
                "type": "aws_instance",
                "name": "web",
                "change": {
                    "actions": ["delete", "create"],
                    "before": {"instance_type": "t3.micro"},
                    "after": {"instance_type": "m5.large"},
                },
            }
        ]
    }
    [r] = terraform.plan_resources(tf_replace, aws_region="us-east-1")
    assert (
        r.op == "replace"
        and r.before.components[0].sku == "t3.micro"
        and r.after.components[0].sku == "m5.large"
    )


def test_not_a_plan_is_a_clear_error():
    with pytest.raises(ValueError, match="steps"):
        plan_resources({"hello": 1})
    with pytest.raises(ValueError, match="resource_changes"):
        terraform.plan_resources({"hello": 1})
