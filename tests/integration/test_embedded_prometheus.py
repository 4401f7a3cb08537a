"""`finfocus up` with a real Prometheus beside it (Debian's binary): every service's /metrics
shows live series after an import, Prometheus scrapes them all, and evaluates rules (a test
rule that fires once records are stored, and deploy/prometheus/rules.yml when present); every
service's /readyz turns 503 while the database refuses connections and 200 once it is back."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from finfocus.embedded.state import ProcessRef

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="no prometheus binary on PATH (apt-get install prometheus)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
STREAM = ("ingest", "pricing", "anomaly", "forecast", "remediation")
TEST_RULES = """
groups:
  - name: finfocus-test
    rules:
      - alert: FinFocusTestRecordsStored
        expr: sum by (service) (finfocus_records_total{outcome="stored"}) > 0
        labels: {severity: info}
"""


def cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def query(client: httpx.Client, base: str, promql: str) -> list[dict]:
    answer = client.get(f"{base}/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def wait_for(check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def focus_file(path: Path, n: int) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "ProviderName",
                "BillingAccountId",
                "SubAccountId",
                "ServiceName",
                "ChargeCategory",
                "ChargePeriodStart",
                "ChargePeriodEnd",
                "BillingPeriodStart",
                "BillingCurrency",
                "BilledCost",
                "ResourceId",
            ]
        )
        for i in range(n):
            hour = f"{month}-01T{i % 24:02d}:00:00Z"
            writer.writerow(
                [
                    "AWS",
                    "000123",
                    f"sub-{i % 3}",
                    "EC2",
                    "Usage",
                    hour,
                    hour.replace(":00:00Z", ":59:59Z"),
                    f"{month}-01T00:00:00Z",
                    "USD",
                    "1.25",
                    f"i-{i}",
                ]
            )


async def _database_connections(admin_url: str, name: str, *, allow: bool) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


def test_stack_with_prometheus_scrapes_every_service_fires_a_rule_and_readiness_follows_the_database(
    tmp_path, database_url, pg_admin_url
):
    home = tmp_path / "home"
    rules = tmp_path / "test-rules.yml"
    rules.write_text(TEST_RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
    env.update(
        FINFOCUS_HOME=str(home),
        FINFOCUS_DATABASE_URL=database_url,
        FINFOCUS_PROMETHEUS_RULES=str(rules),
        FINFOCUS_METRICS_SAMPLE_SECONDS="2",
        COLUMNS="200",
    )
    up = cli(env, "up", "--detach", "--timeout", "300")
    prometheus = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(cli(env, "status", "--output", "json").stdout)
        base = status["prometheus_url"]
        assert base and base.startswith("http://127.0.0.1:")
        with httpx.Client(timeout=10) as client:
            urls = wait_for(
                lambda: (
                    (s := json.loads(cli(env, "status", "--output", "json").stdout)["metrics"])
                    and set(STREAM) <= set(s)
                    and s
                ),
                30,
            )
            assert urls and set(STREAM) <= set(urls), urls
            for url in urls.values():
                assert client.get(f"{url}/healthz").status_code == 200

            sample = tmp_path / "bill.csv"
            focus_file(sample, 60)
            done = cli(env, "ingest", str(sample), "--format", "focus", "--wait")
            assert done.returncode == 0, done.stdout + done.stderr

            # each service's own endpoint, as curl would see it
            pricing = client.get(f"{urls['pricing']}/metrics").text
            assert (
                'finfocus_records_total{outcome="stored",service="pricing",topic="raw-billing"} 60.0'
                in pricing
            )
            assert 'finfocus_consumer_lag{group="finfocus-pricing"' in pricing
            for service in STREAM:
                text = client.get(f"{urls[service]}/metrics").text
                assert f'finfocus_service_info{{service="{service}"' in text, service
                assert client.get(f"{urls[service]}/readyz").status_code in (200, 503)
            consumers = [s for s in STREAM if s != "ingest"]
            for service in consumers:
                text = client.get(f"{urls[service]}/metrics").text
                assert f'finfocus_consumer_lag{{group="finfocus-{service}' in text, service

            # through Prometheus: every service is a target that is up, the series are there
            def all_up():
                got = {r["metric"].get("service"): r["value"][1] for r in query(client, base, "up")}
                return got if all(got.get(s) == "1" for s in STREAM) else None

            assert wait_for(all_up, 60), query(client, base, "up")
            stored = wait_for(
                lambda: query(
                    client, base, 'finfocus_records_total{service="pricing",outcome="stored"} >= 60'
                ),
                60,
            )
            assert stored and stored[0]["metric"]["topic"] == "raw-billing"
            cost = wait_for(
                lambda: query(
                    client, base, 'finfocus_cost_current_month{provider="AWS",currency="USD"}'
                ),
                60,
            )
            assert cost and float(cost[0]["value"][1]) == 75.0

            # a rule evaluated by Prometheus: the test alert fires
            firing = wait_for(
                lambda: query(
                    client,
                    base,
                    'ALERTS{alertname="FinFocusTestRecordsStored",alertstate="firing",service="pricing"}',
                ),
                60,
            )
            assert firing, client.get(f"{base}/api/v1/rules").text
            groups = client.get(f"{base}/api/v1/rules").json()["data"]["groups"]
            if (ROOT / "deploy" / "prometheus" / "rules.yml").exists():
                repo = [g for g in groups if g["file"].endswith("deploy/prometheus/rules.yml")]
                assert repo, "deploy/prometheus/rules.yml was not loaded (promtool refused it?)"
                assert all(r["health"] != "err" for g in repo for r in g["rules"]), repo

            # the database goes away (no new connections, every session terminated): every
            # service stays alive but answers 503 on /readyz, and 200 again once it is back
            def readiness(url: str) -> int:
                try:
                    return client.get(f"{url}/readyz").status_code
                except httpx.HTTPError:
                    return 0

            assert wait_for(lambda: all(readiness(urls[s]) == 200 for s in STREAM), 60)
            name = database_url.rsplit("/", 1)[1]
            asyncio.run(_database_connections(pg_admin_url, name, allow=False))
            try:
                assert wait_for(lambda: all(readiness(urls[s]) == 503 for s in STREAM), 30), {
                    s: client.get(f"{urls[s]}/readyz").text for s in STREAM
                }
                assert "database unreachable" in client.get(f"{urls['pricing']}/readyz").text
                assert all(client.get(f"{urls[s]}/healthz").status_code == 200 for s in STREAM)
            finally:
                asyncio.run(_database_connections(pg_admin_url, name, allow=True))
            assert wait_for(lambda: all(readiness(urls[s]) == 200 for s in STREAM), 60), {
                s: client.get(f"{urls[s]}/readyz").text for s in STREAM
            }
        state = json.loads((home / "run" / "stack.json").read_text())
        prometheus = ProcessRef.from_dict(state["prometheus"])
        assert prometheus is not None and prometheus.alive()
    finally:
        down = cli(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert prometheus is None or not prometheus.alive()
