"""Pricing throughput through the plugin host (aws-public out of process), with cache misses
and hits, and `cost projected` on a 1,000-resource plan, Pulumi and Terraform (target: the whole
command, a fresh process, under 1 s).

    .venv/bin/python bench/pricing.py [--records 20000] [--resources 1000] [--projected-only] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finfocus.broker import Envelope  # noqa: E402
from finfocus.telemetry import make_tracer_provider  # noqa: E402
from services.pricing.batch import BatchPricer  # noqa: E402
from services.pricing.domain import SpecBook  # noqa: E402
from services.pricing.host import PluginHost  # noqa: E402
from services.pricing.plugins import BUILTINS, AwsPublicParams  # noqa: E402
from services.pricing.projected import price_plan  # noqa: E402
from services.pricing.snapshot import BUNDLED_DIR, PriceSnapshot  # noqa: E402

TYPES = [
    "t3.micro",
    "t3.medium",
    "t3.large",
    "m5.large",
    "m5.xlarge",
    "c6g.large",
    "c6g.xlarge",
    "t3.nano",
]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]


def usage_records(n: int) -> list[Envelope]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        body = orjson.dumps(
            {
                "ProviderName": "AWS",
                "BillingAccountId": "123456789012",
                "SubAccountId": "210987654321",
                "ChargePeriodStart": "2024-09-01T00:00:00Z",
                "ChargePeriodEnd": "2024-09-01T01:00:00Z",
                "BillingCurrency": "USD",
                "ServiceName": "AmazonEC2",
                "ChargeCategory": "Usage",
                "ConsumedQuantity": "1",
                "ConsumedUnit": "Hrs",
                "ResourceType": rng.choice(TYPES),
                "RegionId": rng.choice(REGIONS),
                "ResourceId": f"i-{i:017x}",
                "x_RecordId": f"u-{i}",
            }
        )
        out.append(Envelope(body, b"AWS:210987654321", {}, "raw-billing", 0, i))
    return out


PLAN_TYPES = [
    "t3.micro",
    "t3.medium",
    "t3.large",
    "m5.large",
    "m5.xlarge",
    "c5.large",
    "r6i.2xlarge",
    "c6g.large",
]


def plan(n: int) -> dict:
    """A Pulumi preview of n resources: instances with root volumes, volumes, RDS (some
    Multi-AZ), load balancers, NAT gateways, IAM roles, in three regions."""
    rng = random.Random(2)
    kinds = [
        (
            "aws:ec2/instance:Instance",
            lambda: {
                "instanceType": rng.choice(PLAN_TYPES),
                "availabilityZone": rng.choice(REGIONS) + "a",
                "rootBlockDevice": {"volumeSize": rng.choice([8, 30, 100]), "volumeType": "gp3"},
            },
        ),
        (
            "aws:ebs/volume:Volume",
            lambda: {
                "type": rng.choice(["gp3", "gp2", "io1"]),
                "size": rng.randint(8, 500),
                "iops": 4000,
                "availabilityZone": "us-east-1a",
            },
        ),
        (
            "aws:rds/instance:Instance",
            lambda: {
                "instanceClass": "db.m5.large",
                "engine": "postgres",
                "allocatedStorage": 100,
                "multiAz": rng.random() < 0.5,
                "storageType": "gp3",
            },
        ),
        ("aws:lb/loadBalancer:LoadBalancer", lambda: {"loadBalancerType": "application"}),
        ("aws:ec2/natGateway:NatGateway", lambda: {"subnetId": "subnet-1"}),
        ("aws:iam/role:Role", lambda: {}),
    ]
    steps = []
    for i in range(n):
        t, props = rng.choice(kinds)
        urn = f"urn:pulumi:dev::big::{t}::r{i}"
        steps.append(
            {
                "op": "create",
                "urn": urn,
                "newState": {"urn": urn, "custom": True, "type": t, "inputs": props()},
            }
        )
    return {"config": {"aws:region": "us-east-1"}, "steps": steps}


def terraform_plan(n: int) -> dict:
    """The same resources as `plan(n)`, as `terraform show -json` gives them."""
    from services.pricing.terraform import PULUMI_TO_TF

    def snake(key: str) -> str:
        return "".join("_" + c.lower() if c.isupper() else c for c in key)

    def attrs(value):
        if isinstance(value, dict):
            return {
                snake(k): [attrs(v)] if isinstance(v, dict) else attrs(v) for k, v in value.items()
            }
        return value

    changes = []
    for step in plan(n)["steps"]:
        state = step["newState"]
        tf_type = PULUMI_TO_TF[state["type"]]
        name = state["urn"].rsplit("::", 1)[-1]
        changes.append(
            {
                "address": f"{tf_type}.{name}",
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": attrs(state["inputs"]),
                    "after_unknown": {},
                },
            }
        )
    return {
        "format_version": "1.2",
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"aws": {"expressions": {"region": {"constant_value": "us-east-1"}}}}
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--resources", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--projected-only", action="store_true", help="skip the usage-pricing throughput part"
    )
    args = parser.parse_args()
    envelopes = usage_records(args.records)
    tracer = make_tracer_provider("bench").get_tracer("bench")
    ref = BUILTINS["aws-public"].ref("aws-public", AwsPublicParams())

    for label, ttl in (
        ()
        if args.projected_only
        else (("cache off (every distinct key asks the plugin)", 0.0), ("cache on", 3600.0))
    ):
        host = PluginHost([ref], ttl=ttl)
        started = time.perf_counter()
        await host.start()
        startup = time.perf_counter() - started
        pricer = BatchPricer(tracer, specs=SpecBook, quotes=host.quotes)
        rates = []
        for _ in range(2):  # first pass cold, second pass warm (when the cache is on)
            started = time.perf_counter()
            priced = 0
            for k in range(0, len(envelopes), 2500):
                out = await pricer.process(envelopes[k : k + 2500])
                priced += len(out.lines)
            rates.append(priced / (time.perf_counter() - started))
        stats = host.report()["aws-public"]
        await host.stop()
        print(
            f"usage pricing, {label}: pass 1 {rates[0]:,.0f} rows/s, pass 2 {rates[1]:,.0f} rows/s "
            f"(plugin calls {stats['calls']}, cache hits {stats['cache_hits']}, plugin start {startup:.2f} s)"
        )

    doc = plan(args.resources)
    snapshot = PriceSnapshot.load(BUNDLED_DIR)
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        result = await price_plan(doc, specs=SpecBook(), quotes=None, snapshot=snapshot)
        timings.append(time.perf_counter() - started)
    s = result["summary"]
    print(
        f"cost projected, {args.resources} resources, pricing in process: median {statistics.median(timings):.3f} s "
        f"over {args.runs} runs; total {s['totalMonthly']} {s['currency']}, {s['unpriced']} unpriced"
    )

    # the whole command as a pipeline runs it: a fresh process each time (imports, plan, prices, output)
    import json
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "--pulumi-json": Path(tmp) / "plan.json",
            "--terraform-json": Path(tmp) / "tfplan.json",
        }
        paths["--pulumi-json"].write_text(json.dumps(doc))
        paths["--terraform-json"].write_text(json.dumps(terraform_plan(args.resources)))
        env = {**os.environ, "FINFOCUS_HOME": str(Path(tmp) / "home")}
        floor = []
        for _ in range(
            args.runs
        ):  # Python start-up and building the `finfocus` app (every service's commands)
            started = time.perf_counter()
            # the bench times each command alone: nothing else runs on the loop meanwhile
            subprocess.run(  # noqa: ASYNC221
                [sys.executable, "-c", "import finfocus.cli; finfocus.cli.build()"],
                env=env,
                check=True,
            )
            floor.append(time.perf_counter() - started)
        print(
            f"starting Python and building the `finfocus` app alone: median {statistics.median(floor):.2f} s"
        )
        for flag, path in paths.items():
            walls = []
            for _ in range(args.runs):
                started = time.perf_counter()
                done = subprocess.run(  # noqa: ASYNC221
                    [
                        sys.executable,
                        "-m",
                        "finfocus.cli",
                        "cost",
                        "projected",
                        flag,
                        str(path),
                        "--output",
                        "json",
                        "--budget",
                        "10000000",
                    ],
                    env=env,
                    capture_output=True,
                    check=True,
                )
                walls.append(time.perf_counter() - started)
            total = json.loads(done.stdout)["summary"]["totalMonthly"]
            print(
                f"`finfocus cost projected {flag}` on {args.resources} resources: median {statistics.median(walls):.2f} s, "
                f"min {min(walls):.2f} s, max {max(walls):.2f} s wall over {args.runs} runs (target < 1 s); total {total}"
            )


if __name__ == "__main__":
    asyncio.run(main())
