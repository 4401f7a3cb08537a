"""Conformance: a plugin written against finfocus-spec's `finfocus.v1` CostSourceService
(tests/fixtures/spec_plugin/server.py: its own proto stubs, `--port`, `PORT=` announcement)
installed both ways finfocus users install plugins, launched by the host as it launches any
plugin, used by `finfocus cost projected` and for actual costs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.pricing.host import PluginHost, discover, load_manifest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spec_plugin"

PLAN = {
    "config": {"aws:region": "us-east-1"},
    "steps": [
        {
            "op": "create",
            "urn": "urn:pulumi:dev::shop::aws:ec2/instance:Instance::web",
            "newState": {
                "urn": "urn:pulumi:dev::shop::aws:ec2/instance:Instance::web",
                "custom": True,
                "type": "aws:ec2/instance:Instance",
                "inputs": {
                    "instanceType": "m5.large",
                    "availabilityZone": "us-east-1a",
                    "rootBlockDevice": {"volumeType": "gp3", "volumeSize": 20},
                },
                "outputs": {},
            },
        },
        {
            "op": "create",
            "urn": "urn:pulumi:dev::shop::aws:ebs/volume:Volume::data",
            "newState": {
                "urn": "urn:pulumi:dev::shop::aws:ebs/volume:Volume::data",
                "custom": True,
                "type": "aws:ebs/volume:Volume",
                "inputs": {"type": "gp2", "size": 100, "availabilityZone": "us-east-1a"},
                "outputs": {},
            },
        },
        {
            "op": "create",
            "urn": "urn:pulumi:dev::shop::aws:ec2/instance:Instance::cache",
            "newState": {
                "urn": "urn:pulumi:dev::shop::aws:ec2/instance:Instance::cache",
                "custom": True,
                "type": "aws:ec2/instance:Instance",
                "inputs": {
                    "instanceType": "x9.huge",
                    "availabilityZone": "us-east-1a",
                    "rootBlockDevice": {"volumeType": "gp3", "volumeSize": 8},
                },
                "outputs": {},
            },
        },
        {
            "op": "create",
            "urn": "urn:pulumi:dev::shop::azure-native:compute:VirtualMachine::vm",
            "newState": {
                "urn": "urn:pulumi:dev::shop::azure-native:compute:VirtualMachine::vm",
                "custom": True,
                "type": "azure-native:compute:VirtualMachine",
                "inputs": {"location": "eastus", "hardwareProfile": {"vmSize": "Standard_B2s"}},
                "outputs": {},
            },
        },
    ],
}


def install_yaml(home: Path) -> Path:
    """As this project installs plugins: plugin.yaml with `protocol: finfocus.v1`."""
    target = home / "plugins" / "spec-fixture" / "0.1.0"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def install_binary(home: Path) -> Path:
    """As finfocus-spec's CLI installs them: `<name>/<version>/finfocus-plugin-<name>` (an
    executable, here the fixture with a shebang), `plugin.manifest.json`, no plugin.yaml."""
    target = home / "plugins" / "spec-fixture" / "v0.2.0"
    target.mkdir(parents=True)
    binary = target / "finfocus-plugin-spec-fixture"
    binary.write_text(f"#!{sys.executable}\n" + (FIXTURE / "server.py").read_text())
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (target / "plugin.manifest.json").write_text(
        json.dumps(
            {
                "name": "spec-fixture",
                "version": "v0.2.0",
                "description": "fixture",
                "providers": ["aws", "azure"],
            }
        )
    )
    (target / "README.md").write_text("not a program")
    return target


def requests_of(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def projected(tmp_path: Path, home: Path, *args: str):
    from finfocus.cli import app as cli

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    (tmp_path / "no-specs").mkdir(exist_ok=True)
    env = {
        "FINFOCUS_HOME": str(home),
        "FINFOCUS_PRICING_BUILTIN_PLUGINS": "",
        "SPEC_FIXTURE_LOG": str(tmp_path / "requests.ndjson"),
    }
    return CliRunner().invoke(
        cli,
        [
            "cost",
            "projected",
            "--pulumi-json",
            str(plan),
            "--specs",
            str(tmp_path / "no-specs"),
            *args,
        ],
        env=env,
    )


@pytest.mark.parametrize("install", [install_yaml, install_binary])
def test_cost_projected_prices_through_a_finfocus_v1_plugin(tmp_path: Path, install):
    home = tmp_path / "home"
    directory = install(home)
    refs, problems = discover(home / "plugins")
    assert (
        problems == []
        and [r.manifest.protocol for r in refs] == ["finfocus.v1"]
        and refs[0].directory == directory
    )

    result = projected(tmp_path, home, "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["name"]: r for r in doc["resources"]}
    # m5.large 0.1/h x 730 (GetPricingSpec, per_hour) + 20 GB gp3 root x 0.08 (GetProjectedCost unit_price)
    assert Decimal(rows["web"]["monthly"]) == Decimal("74.6")
    assert Decimal(rows["data"]["monthly"]) == Decimal("8")  # 100 GB gp2 x 0.08
    assert Decimal(rows["vm"]["monthly"]) == Decimal("36.5")  # cost_per_month 36.5 / 730 x 730 h
    for name in ("web", "data", "vm"):
        assert rows[name]["priceSource"] == "plugin:spec-fixture", rows[name]
    assert rows["cache"]["priceSource"] == "none" and "x9.huge" in rows["cache"]["reason"]
    assert Decimal(doc["summary"]["totalMonthly"]) == Decimal("119.1")
    assert doc["summary"]["unpriced"] == 1
    assert "pluginFailures" not in doc["summary"]  # NOT_FOUND is "no price", not a failure

    seen = requests_of(tmp_path / "requests.ndjson")
    assert seen[0]["method"] == "Name"
    specs = {
        (r["request"]["resource"].get("resource_type"), r["request"]["resource"].get("sku")): r[
            "request"
        ]["resource"]
        for r in seen
        if r["method"] == "GetPricingSpec"
    }
    web = specs[("aws:ec2/instance:Instance", "m5.large")]
    assert web["provider"] == "aws" and web["region"] == "us-east-1"
    assert web["tags"] == {"finfocus.service": "AmazonEC2", "finfocus.unit": "Hrs"}
    assert ("aws:ebs/volume:Volume", "gp2") in specs and (
        "azure-native:compute:VirtualMachine",
        "Standard_B2s",
    ) in specs
    fallbacks = {
        (r["request"]["resource"]["resource_type"], r["request"]["resource"].get("sku"))
        for r in seen
        if r["method"] == "GetProjectedCost"
    }
    # GetProjectedCost only where GetPricingSpec had nothing
    assert ("aws:ec2/instance:Instance", "m5.large") not in fallbacks
    assert {
        ("aws:ebs/volume:Volume", "gp2"),
        ("aws:ebs/volume:Volume", "gp3"),
        ("azure-native:compute:VirtualMachine", "Standard_B2s"),
    } <= fallbacks

    # the markdown comment shows the plugin as the source
    md = projected(tmp_path, home, "--output", "markdown")
    assert (
        md.exit_code == 0
        and "| `web` | `aws:ec2/instance:Instance` | create | m5.large |" in md.stdout
    )
    assert "plugin:spec-fixture" in md.stdout


async def test_projected_and_actual_costs_from_the_host(tmp_path: Path):
    directory = install_binary(tmp_path / "home")
    ref = load_manifest(directory)
    assert ref.argv() == [str(directory / "finfocus-plugin-spec-fixture")]
    log = tmp_path / "requests.ndjson"
    os.environ["SPEC_FIXTURE_LOG"] = str(log)
    host = PluginHost([ref], timeout=20, retries=0)
    try:
        await host.start()
        assert host.report()["spec-fixture"]["state"] == "running"

        answer = await host.projected(
            provider="AWS",
            service="AmazonEC2",
            sku="t3.micro",
            resource_type="",
            region="us-east-1",
            unit="Hrs",
        )
        assert answer is not None
        assert (
            answer.source,
            answer.unit_price,
            answer.monthly,
            answer.currency,
            answer.detail,
        ) == ("plugin:spec-fixture", Decimal("0.01"), Decimal("7.3"), "USD", "on-demand")
        assert (
            await host.projected(
                provider="AWS",
                service="AmazonEC2",
                sku="nope.small",
                resource_type="",
                region="us-east-1",
                unit="Hrs",
            )
            is None
        )

        rows = await host.actual(
            ref, "i-0abc", "2024-09-01T00:00:00Z", "2024-09-03T00:00:00Z", {"env": "prod"}
        )
        assert [
            (r.start, r.end, r.cost, r.currency, r.usage_amount, r.usage_unit, r.source)
            for r in rows
        ] == [
            (
                "2024-09-01T00:00:00Z",
                "2024-09-02T00:00:00Z",
                "1.25",
                "USD",
                "24",
                "hour",
                "spec-fixture",
            ),
            (
                "2024-09-02T00:00:00Z",
                "2024-09-03T00:00:00Z",
                "1.75",
                "USD",
                "24",
                "hour",
                "spec-fixture",
            ),
        ]
        actual_request = [r for r in requests_of(log) if r["method"] == "GetActualCost"][0][
            "request"
        ]
        assert actual_request == {
            "resource_id": "i-0abc",
            "start": "2024-09-01T00:00:00Z",
            "end": "2024-09-03T00:00:00Z",
            "tags": {"env": "prod"},
        }
        assert (
            await host.actual(ref, "", "2024-09-01T00:00:00Z", "2024-09-02T00:00:00Z") == []
        )  # INVALID_ARGUMENT
        assert await host.pricing_specs(ref) == []  # finfocus.v1 lists nothing for the catalog
        assert host.report()["spec-fixture"]["failures"] == 0
    finally:
        await host.stop()
        os.environ.pop("SPEC_FIXTURE_LOG", None)


def test_plugin_install_validates_and_copies_a_finfocus_v1_plugin(tmp_path: Path):
    from finfocus.cli import app as cli

    env = {"FINFOCUS_HOME": str(tmp_path / "home"), "FINFOCUS_PRICING_BUILTIN_PLUGINS": ""}
    result = CliRunner().invoke(cli, ["plugin", "install", str(FIXTURE)], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "plugins" / "spec-fixture" / "0.1.0" / "server.py").is_file()
    listed = CliRunner().invoke(cli, ["plugin", "list", "--output", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "spec-fixture" in listed.stdout


async def test_a_plugin_that_dies_before_announcing_is_reported(tmp_path: Path):
    target = tmp_path / "plugins" / "broken" / "v1.0.0"
    target.mkdir(parents=True)
    binary = target / "finfocus-plugin-broken"
    binary.write_text("#!/bin/sh\necho 'starting' \nexit 3\n")
    binary.chmod(0o755)
    ref = load_manifest(target)
    host = PluginHost([ref], timeout=5, retries=0)
    try:
        await host.start()
        report = host.report()["broken"]
        assert (
            report["state"] == "failed"
            and "exited with code 3 before announcing PORT=" in report["last_error"]
        )
    finally:
        await host.stop()


def test_plugin_actual_and_validate_on_an_install_without_plugin_yaml(tmp_path: Path):
    from finfocus.cli import app as cli

    home = tmp_path / "home"
    directory = install_binary(home)
    env = {"FINFOCUS_HOME": str(home), "FINFOCUS_PRICING_BUILTIN_PLUGINS": ""}
    checked = CliRunner().invoke(
        cli, ["plugin", "validate", str(directory), "--output", "json"], env=env
    )
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["results"][0] == {
        "path": str(directory),
        "name": "spec-fixture",
        "version": "v0.2.0",
        "state": "ok",
    }

    result = CliRunner().invoke(
        cli,
        [
            "plugin",
            "actual",
            "spec-fixture",
            "--resource-id",
            "i-0abc",
            "--from",
            "2024-09-01",
            "--to",
            "2024-09-03",
            "--tag",
            "env=prod",
            "--output",
            "json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["from"], doc["to"], doc["totals"]) == (
        "2024-09-01T00:00:00Z",
        "2024-09-03T00:00:00Z",
        {"USD": "3.00"},
    )
    assert [
        (r["start"], r["cost"], r["usage_amount"], r["usage_unit"]) for r in doc["results"]
    ] == [
        ("2024-09-01T00:00:00Z", "1.25", "24", "hour"),
        ("2024-09-02T00:00:00Z", "1.75", "24", "hour"),
    ]
    table = CliRunner().invoke(
        cli,
        [
            "plugin",
            "actual",
            "spec-fixture",
            "--resource-id",
            "i-0abc",
            "--from",
            "2024-09-01",
            "--to",
            "2024-09-03",
        ],
        env=env,
    )
    assert table.exit_code == 0 and "Total: 3.00 USD" in table.stdout

    unknown = CliRunner().invoke(
        cli, ["plugin", "actual", "nope", "--from", "2024-09-01", "--to", "2024-09-02"], env=env
    )
    assert unknown.exit_code == 2 and "no plugin 'nope'; known: spec-fixture" in " ".join(
        unknown.output.split()
    )
    bad = CliRunner().invoke(
        cli,
        ["plugin", "actual", "spec-fixture", "--from", "yesterday", "--to", "2024-09-02"],
        env=env,
    )
    assert bad.exit_code == 2
    refused = CliRunner().invoke(
        cli,
        ["plugin", "actual", "spec-fixture", "--from", "2024-09-01", "--to", "2024-09-02"],
        env=env,
    )
    # no --resource-id: the plugin answers INVALID_ARGUMENT, i.e. nothing to report
    assert refused.exit_code == 0 and "no cost reported" in refused.stdout
