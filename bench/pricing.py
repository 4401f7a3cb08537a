"""Pricing throughput through the plugin host (aws-public out of process), with cache misses
and hits, and `cost projected` on a 1,000-resource Pulumi plan (target: < 2 s warm).

    .venv/bin/python bench/pricing.py [--records 20000] [--resources 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
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

TYPES = ["t3.micro", "t3.medium", "t3.large", "m5.large", "m5.xlarge", "c6g.large", "c6g.xlarge", "t3.nano"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]


def usage_records(n: int) -> list[Envelope]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        body = orjson.dumps({
            "ProviderName": "AWS", "BillingAccountId": "123456789012", "SubAccountId": "210987654321",
            "ChargePeriodStart": "2024-09-01T00:00:00Z", "ChargePeriodEnd": "2024-09-01T01:00:00Z",
            "BillingCurrency": "USD", "ServiceName": "AmazonEC2", "ChargeCategory": "Usage",
            "ConsumedQuantity": "1", "ConsumedUnit": "Hrs", "ResourceType": rng.choice(TYPES),
            "RegionId": rng.choice(REGIONS), "ResourceId": f"i-{i:017x}", "x_RecordId": f"u-{i}",
        })
        out.append(Envelope(body, b"AWS:210987654321", {}, "raw-billing", 0, i))
    return out


def plan(n: int) -> dict:
    rng = random.Random(2)
    kinds = [
        ("aws:ec2/instance:Instance", lambda: {"instanceType": rng.choice(TYPES[:-1]), "availabilityZone": rng.choice(REGIONS) + "a"}),
        ("aws:ebs/volume:Volume", lambda: {"type": rng.choice(["gp3", "gp2"]), "size": rng.randint(8, 500), "availabilityZone": "us-east-1a"}),
        ("aws:rds/instance:Instance", lambda: {"instanceClass": "db.m5.large", "engine": "postgres", "allocatedStorage": 20}),
        ("aws:lb/loadBalancer:LoadBalancer", lambda: {"loadBalancerType": "application"}),
        ("aws:iam/role:Role", lambda: {}),
    ]
    steps = []
    for i in range(n):
        t, props = rng.choice(kinds)
        urn = f"urn:pulumi:dev::big::{t}::r{i}"
        steps.append({"op": "create", "urn": urn, "newState": {"urn": urn, "custom": True, "type": t, "inputs": props()}})
    return {"config": {"aws:region": "us-east-1"}, "steps": steps}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--resources", type=int, default=1_000)
    args = parser.parse_args()
    envelopes = usage_records(args.records)
    tracer = make_tracer_provider("bench").get_tracer("bench")
    ref = BUILTINS["aws-public"].ref("aws-public", AwsPublicParams())

    for label, ttl in (("cache off (every distinct key asks the plugin)", 0.0), ("cache on", 3600.0)):
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
                out = await pricer.process(envelopes[k:k + 2500])
                priced += len(out.lines)
            rates.append(priced / (time.perf_counter() - started))
        stats = host.report()["aws-public"]
        await host.stop()
        print(f"usage pricing, {label}: pass 1 {rates[0]:,.0f} rows/s, pass 2 {rates[1]:,.0f} rows/s "
              f"(plugin calls {stats['calls']}, cache hits {stats['cache_hits']}, plugin start {startup:.2f} s)")

    doc = plan(args.resources)
    host = PluginHost([ref])
    started = time.perf_counter()
    await host.start()
    startup = time.perf_counter() - started
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        result = await price_plan(doc, specs=SpecBook(), quotes=host.quotes)
        timings.append(time.perf_counter() - started)
    await host.stop()
    s = result["summary"]
    print(f"cost projected, {args.resources} resources, in process: cold {timings[0]:.3f} s, warm {min(timings[1:]):.3f} s "
          f"(+ plugin start {startup:.2f} s); total {s['totalMonthly']} {s['currency']}, {s['unpriced']} unpriced")

    # the command itself, as a pipeline runs it: a fresh process each time; the second run
    # finds the plugin answers in FINFOCUS_HOME/cache and starts no plugin
    import json
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        path.write_text(json.dumps(doc))
        env = {**os.environ, "FINFOCUS_HOME": str(Path(tmp) / "home")}
        walls = []
        for _ in range(2):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "finfocus.cli", "cost", "projected", "--pulumi-json", str(path),
                                   "--output", "json"], env=env, capture_output=True, check=True)
            walls.append(time.perf_counter() - started)
        total = json.loads(done.stdout)["summary"]["totalMonthly"]
    print(f"`finfocus cost projected` on {args.resources} resources: first run {walls[0]:.2f} s, "
          f"warm run {walls[1]:.2f} s wall (target < 2 s), total {total}")


if __name__ == "__main__":
    asyncio.run(main())
