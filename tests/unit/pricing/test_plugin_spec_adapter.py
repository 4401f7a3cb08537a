"""The finfocus.v1 adapter (pure): descriptors as finfocus-spec's core sends them, doubles read
as exact decimals, specs and projected answers turned into unit prices, cost points, the
start-up announcement, and installs without plugin.yaml."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from services.pricing.finfocus_spec import adapter
from services.pricing.finfocus_spec import costsource_pb2 as v1
from services.pricing.finfocus_spec.launch import parse_announcement
from services.pricing.finfocus_spec.layout import spec_manifest_data
from services.pricing.host import load_manifest


def test_the_service_is_finfocus_v1_cost_source_service():
    service = v1.DESCRIPTOR.services_by_name["CostSourceService"]
    assert service.full_name == adapter.SERVICE
    assert {"Name", "Supports", "GetProjectedCost", "GetActualCost", "GetPricingSpec"} <= {
        m.name for m in service.methods
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            dict(
                provider="AWS",
                service="AmazonEC2",
                sku="m5.large",
                resource_type_=None,
                region="us-east-1",
                unit="Hrs",
            ),
            {
                "provider": "aws",
                "resource_type": "aws:ec2/instance:Instance",
                "sku": "m5.large",
                "region": "us-east-1",
                "tags": {"finfocus.service": "AmazonEC2", "finfocus.unit": "Hrs"},
            },
        ),
        (
            dict(
                provider="AWS",
                service="AmazonRDS",
                sku="db.m5.large:postgresql:multi-az",
                resource_type_=None,
                region="eu-west-1",
                unit="Hrs",
            ),
            {
                "provider": "aws",
                "resource_type": "aws:rds/instance:Instance",
                "sku": "db.m5.large",
                "region": "eu-west-1",
                "tags": {
                    "engine": "postgresql",
                    "multiAz": "true",
                    "finfocus.service": "AmazonRDS",
                    "finfocus.unit": "Hrs",
                },
            },
        ),
        (
            dict(
                provider="AWS",
                service="AmazonRDS",
                sku="storage:gp3",
                resource_type_=None,
                region=None,
                unit="GB-Mo",
            ),
            {
                "provider": "aws",
                "resource_type": "aws:rds/instance:Instance",
                "sku": "",
                "region": "",
                "tags": {
                    "storageType": "gp3",
                    "finfocus.component": "storage",
                    "finfocus.service": "AmazonRDS",
                    "finfocus.unit": "GB-Mo",
                },
            },
        ),
        (
            dict(
                provider="Microsoft",
                service="Virtual Machines",
                sku="Standard_B2s",
                resource_type_=None,
                region="eastus",
                unit="Hrs",
            ),
            {
                "provider": "azure",
                "resource_type": "azure-native:compute:VirtualMachine",
                "sku": "Standard_B2s",
                "region": "eastus",
                "tags": {"finfocus.service": "Virtual Machines", "finfocus.unit": "Hrs"},
            },
        ),
        (
            dict(
                provider="Google Cloud",
                service="Compute Engine",
                sku="pd-ssd",
                resource_type_=None,
                region="us-central1",
                unit="GB-Mo",
            ),
            {
                "provider": "gcp",
                "resource_type": "gcp:compute/disk:Disk",
                "sku": "pd-ssd",
                "region": "us-central1",
                "tags": {"finfocus.service": "Compute Engine", "finfocus.unit": "GB-Mo"},
            },
        ),
        (
            dict(
                provider="Acme Cloud",
                service="Widgets & Co",
                sku="w1",
                resource_type_="acme:widget:Widget",
                region="",
                unit="",
                attributes={"size": 3},
            ),
            {
                "provider": "custom",
                "resource_type": "acme:widget:Widget",
                "sku": "w1",
                "region": "",
                "tags": {"size": "3", "finfocus.service": "Widgets & Co"},
            },
        ),
    ],
)
def test_descriptor_fields(kwargs, expected):
    fields = adapter.descriptor_fields(**kwargs)
    assert fields == expected
    v1.ResourceDescriptor(**fields)  # a valid message


def test_unknown_service_gets_a_type_token_the_spec_accepts():
    token = adapter.resource_type("Acme Cloud", "Widgets & Co", "Hrs")
    assert token == "custom:WidgetsCo"


def test_money_is_the_shortest_decimal_of_the_double_and_refuses_garbage():
    assert adapter.money(0.1, "x") == Decimal("0.1")
    assert adapter.money(0.1 * 3, "x") == Decimal(
        "0.30000000000000004"
    )  # what the plugin sent, not rounded away
    assert adapter.money(0.0, "x") == Decimal(0)
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(adapter.SpecAnswerError):
            adapter.money(bad, "rate_per_unit")


def test_price_from_spec_uses_its_unit_or_billing_mode():
    spec = v1.PricingSpec(rate_per_unit=0.096, currency="USD", billing_mode="per_hour", unit="hour")
    assert adapter.price_from_spec(spec, "Hrs") == adapter.UnitPrice(
        Decimal("0.096"), "USD", "hour", ""
    )
    by_mode = v1.PricingSpec(rate_per_unit=0.08, billing_mode="per_gb_month")
    assert adapter.price_from_spec(by_mode, "GB-Mo") == adapter.UnitPrice(
        Decimal("0.08"), "USD", "GB-month", ""
    )
    assert adapter.price_from_spec(by_mode, "Hrs") is None  # another unit
    assert adapter.price_from_spec(v1.PricingSpec(), "Hrs") is None  # empty: no price
    assert (
        adapter.price_from_spec(v1.PricingSpec(rate_per_unit=1, billing_mode="tiered"), "GB-Mo")
        is None
    )
    with pytest.raises(adapter.SpecAnswerError):
        adapter.price_from_spec(v1.PricingSpec(rate_per_unit=-1, billing_mode="per_hour"), "Hrs")


def test_price_from_projected():
    answer = v1.GetProjectedCostResponse(
        unit_price=0.0104, currency="EUR", cost_per_month=7.592, billing_detail="on-demand"
    )
    assert adapter.price_from_projected(answer, "Hrs") == adapter.UnitPrice(
        Decimal("0.0104"), "EUR", "Hrs", "on-demand"
    )
    monthly_only = v1.GetProjectedCostResponse(cost_per_month=36.5)
    assert adapter.price_from_projected(monthly_only, "Hrs").price == Decimal("0.05")
    assert (
        adapter.price_from_projected(monthly_only, "GB-Mo") is None
    )  # a monthly total says nothing per GB
    assert adapter.price_from_projected(v1.GetProjectedCostResponse(), "Hrs") is None


def test_actual_points_end_at_the_next_point_the_focus_period_or_the_request_end():
    start = adapter.timestamp_of("2024-09-01T00:00:00Z")
    second = adapter.timestamp_of("2024-09-01T12:00:00+00:00")
    focus_end = adapter.timestamp_of("2024-09-02T00:00:00Z")
    results = [
        v1.ActualCostResult(timestamp=start, cost=1.5, source="ce"),
        v1.ActualCostResult(
            timestamp=second,
            cost=2.25,
            usage_amount=3,
            usage_unit="hour",
            focus_record={
                "billing_currency": "EUR",
                "charge_period_end": focus_end,
                "tags": {"team": "a"},
            },
        ),
    ]
    points = adapter.actual_points(results, "2024-09-03T00:00:00Z")
    assert [(p.start, p.end, p.cost, p.currency, p.usage_amount, p.labels) for p in points] == [
        ("2024-09-01T00:00:00Z", "2024-09-01T12:00:00Z", Decimal("1.5"), "USD", None, {}),
        (
            "2024-09-01T12:00:00Z",
            "2024-09-02T00:00:00Z",
            Decimal("2.25"),
            "EUR",
            Decimal("3"),
            {"team": "a"},
        ),
    ]


@pytest.mark.parametrize(
    ("line", "port"),
    [
        ("PORT=50051", 50051),
        ("port=123\n", 123),
        ("4242", 4242),
        ("FINFOCUS_PLUGIN_PORT=7", 7),
        ("listening on 5", None),
        ("PORT=99999", None),
    ],
)
def test_announcement(line, port):
    assert parse_announcement(line) == port


def test_install_without_plugin_yaml(tmp_path):
    version = tmp_path / "aws-public" / "v0.1.4"
    version.mkdir(parents=True)
    assert spec_manifest_data(version) is None
    (version / "notes.txt").write_text("x")
    (version / "notes.txt").chmod(0o755)  # executable, but not a program
    binary = version / "finfocus-plugin-aws-public"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (version / "plugin.manifest.json").write_text(
        json.dumps({"name": "aws-public", "version": "v0.1.4", "description": "AWS list prices"})
    )
    ref = load_manifest(version)
    assert (ref.name, ref.manifest.version, ref.manifest.protocol, ref.manifest.description) == (
        "aws-public",
        "v0.1.4",
        "finfocus.v1",
        "AWS list prices",
    )
    assert ref.argv() == [str(binary)]
    with pytest.raises(ValueError, match="plugin.yaml is missing"):
        load_manifest(tmp_path / "empty")


def test_an_unpacked_release_is_named_after_its_binary(tmp_path):
    release = tmp_path / "downloads" / "finfocus-plugin-aws-public_0.1.4_linux_amd64"
    release.mkdir(parents=True)
    binary = release / "finfocus-plugin-aws-public"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    data = spec_manifest_data(release)
    assert (
        data is not None
        and data["name"] == "aws-public"
        and data["command"] == ["{dir}/finfocus-plugin-aws-public"]
    )
    regional = tmp_path / "plugins" / "aws-public" / "v0.1.4"
    regional.mkdir(parents=True)
    (regional / "finfocus-plugin-aws-public-us-east-1").write_text("#!/bin/sh\n")
    (regional / "finfocus-plugin-aws-public-us-east-1").chmod(0o755)
    assert (
        spec_manifest_data(regional)["name"] == "aws-public"
    )  # a region build keeps its directory's name
