"""The plugin host against real plugin processes: a good one, the built-in aws-public, and
plugins that hang, crash or answer garbage (they cost their own answers, nothing else)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from services.pricing.domain import PriceSpec, SpecBook, UsageLine, decide
from services.pricing.host import PluginHost, discover
from services.pricing.plugins import BUILTINS, AwsPublicParams

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "pricing" / "plugins"


def refs(*names: str):
    found, problems = discover(PLUGINS)
    assert not problems
    by_name = {r.name: r for r in found}
    return [by_name[n] for n in names]


def m5(**kw) -> UsageLine:
    return UsageLine(
        provider="AWS",
        service="AmazonEC2",
        currency="USD",
        quantity=Decimal("10"),
        unit="Hrs",
        resource_type="m5.large",
        region="us-east-1",
        **kw,
    )


SPECS = SpecBook.of(
    [PriceSpec("aws/ec2.yaml", "AWS", "AmazonEC2", Decimal("0.5"), "USD", "Hrs", None, None)]
)


async def test_bad_plugins_cost_only_their_own_answers_and_are_reported():
    host = PluginHost(
        refs("hung", "crashing", "garbage", "flat-prices"),
        timeout=1.0,
        retries=1,
        backoff=0.05,
        failure_threshold=2,
        cooldown=60,
    )
    await host.start()
    try:
        started = time.monotonic()
        quotes = await host.quotes([m5(), m5()])
        elapsed = time.monotonic() - started
        # hung: two 1 s deadlines (one retry), in parallel with the others; nobody waits longer
        assert elapsed < 6
        assert [q.source if q else None for q in quotes[0]] == [
            None,
            None,
            None,
            "plugin:flat-prices",
        ]
        decision = decide(m5(), quotes[0], SPECS)
        assert decision.source == "plugin:flat-prices" and decision.billed_cost == Decimal("1.0")
        report = host.report()
        assert (
            report["hung"]["failures"] >= 1 and "DEADLINE_EXCEEDED" in report["hung"]["last_error"]
        )
        assert report["crashing"]["failures"] >= 1
        assert "not a decimal" in report["garbage"]["last_error"]
        assert report["flat-prices"]["failures"] == 0

        # a second question: the failing plugins are skipped once their circuit is open,
        # the good answer comes from the cache, and pricing falls back to specs where needed
        other = UsageLine(
            provider="AWS",
            service="AmazonEC2",
            currency="USD",
            quantity=Decimal("2"),
            unit="Hrs",
            resource_type="c5.large",
            region="us-east-1",
        )
        for _ in range(2):
            quotes = await host.quotes([other])
        assert decide(other, quotes[0], SPECS).source == "spec:aws/ec2.yaml"
        assert host.report()["hung"]["state"] == "open"
        before = host.report()["flat-prices"]["cache_hits"]
        await host.quotes([m5()])
        assert host.report()["flat-prices"]["cache_hits"] == before + 1
    finally:
        await host.stop()


async def test_crashed_plugin_is_restarted_on_next_use():
    host = PluginHost(
        refs("crashing", "flat-prices"), timeout=2.0, retries=0, failure_threshold=10, ttl=0
    )
    await host.start()
    try:
        await host.quotes([m5()])
        await host.quotes([m5()])
        assert host.report()["crashing"]["restarts"] >= 1
        assert host.report()["flat-prices"]["state"] == "running"
    finally:
        await host.stop()


async def test_aws_public_builtin_answers_from_offer_files():
    ref = BUILTINS["aws-public"].ref("aws-public", AwsPublicParams())
    host = PluginHost([ref], timeout=10.0)
    await host.start()
    try:
        line = UsageLine(
            provider="AWS",
            service="Amazon Elastic Compute Cloud",
            currency="USD",
            quantity=Decimal("730"),
            unit="Hrs",
            resource_type="t3.micro",
            region="us-east-1",
        )
        quotes = await host.quotes([line])
        decision = decide(line, quotes[0], SpecBook())
        assert decision.source == "plugin:aws-public"
        assert decision.billed_cost == Decimal("7.592")
        projected = await host.projected(
            provider="AWS",
            service="AmazonRDS",
            sku="db.m5.large",
            resource_type="aws:rds/instance:Instance",
            region="us-east-1",
            attributes={"engine": "postgresql"},
        )
        assert projected is not None and projected.monthly == Decimal("129.94")
        eur = UsageLine(
            provider="AWS",
            service="AmazonEC2",
            currency="EUR",
            quantity=Decimal("1"),
            unit="Hrs",
            resource_type="t3.micro",
            region="us-east-1",
        )
        assert (await host.quotes([eur]))[0] == [None]
    finally:
        await host.stop()


async def test_opencost_plugin_reads_recorded_allocations_from_a_local_server():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from services.pricing.plugins import OpenCostParams

    body = (
        Path(__file__).resolve().parents[1]  # noqa: ASYNC240 - a fixture, read once
        / "fixtures"
        / "pricing"
        / "opencost"
        / "allocation-pod.json"
    ).read_bytes()
    seen: list[str] = []

    class Recorded(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ref = BUILTINS["opencost"].ref(
        "opencost", OpenCostParams(url=f"http://127.0.0.1:{server.server_port}")
    )
    host = PluginHost([ref], timeout=10.0)
    await host.start()
    try:
        rows = await host.actual(ref, "default", "2024-09-01T00:00:00Z", "2024-09-02T00:00:00Z")
        assert [(r.labels["name"], r.cost) for r in rows] == [
            ("default/web-7d4b9c6f5-x2k8p", "0.441734")
        ]
        everything = await host.actual(
            ref, "", "2024-09-01T00:00:00Z", "2024-09-02T00:00:00Z", {"aggregate": "pod"}
        )
        assert sum(Decimal(r.cost) for r in everything) == Decimal("0.524680")  # idle excluded
        assert (
            "window=2024-09-01T00%3A00%3A00Z%2C2024-09-02T00%3A00%3A00Z" in seen[0]
            and "aggregate=pod" in seen[0]
        )
    finally:
        await host.stop()
        server.shutdown()
