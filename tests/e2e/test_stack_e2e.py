"""The embedded stack end to end, through the real `finfocus` command line.

`finfocus up --detach` in a private FINFOCUS_HOME, `status --output json`; 20,000 billed
records published on `raw-billing` by an outside producer, with malformed messages among
them, reconciled to the cent by `finfocus cost actual` while every malformed one lands on
`raw-billing.dlq` with its reason; a redelivery of half of them that changes nothing;
`finfocus demo` on the running stack; then `finfocus down` and no process left behind.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from finfocus.settings import SERVICES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def finfocus(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
    env["FINFOCUS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "finfocus.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def processes_under(home: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions the test's FINFOCUS_HOME."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info.get("environ") or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.pid == os.getpid():
            continue
        mine = str(home) in cmdline or environ.get("FINFOCUS_HOME") == str(home)
        if mine and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def left_behind(home: Path, grace: float = 15.0) -> list[str]:
    """What still runs under `home` once `grace` seconds passed after `finfocus down` (a
    service's worker processes may outlive it for a moment when it was killed after its own
    grace; a process that is still there then was left behind), with its command line."""
    deadline = time.monotonic() + grace
    while (found := processes_under(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    described = []
    for proc in found:
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            continue
    return described


def billed_records(n: int, seed: int = 11) -> tuple[list[dict], Decimal]:
    rng = random.Random(seed)
    records, total = [], Decimal(0)
    for i in range(n):
        cost = Decimal(rng.randint(-500, 250_000)) / 100  # credits are negative and legal
        total += cost
        day = 1 + i % 28
        records.append(
            {
                "ProviderName": rng.choice(["AWS", "Microsoft", "Google Cloud"]),
                "BillingAccountId": "acct-e2e",
                "SubAccountId": f"sub-{i % 7}",
                "ChargePeriodStart": f"2020-02-{day:02d}T00:00:00Z",
                "ChargePeriodEnd": f"2020-02-{day:02d}T01:00:00Z",
                "BillingCurrency": "USD",
                "ServiceName": rng.choice(["Compute", "Storage", "Database"]),
                "ChargeCategory": "Usage" if cost >= 0 else "Credit",
                "BilledCost": format(cost, "f"),
                "ResourceId": f"r-{i}",
                "x_RecordId": f"e2e-{i}",
            }
        )
    return records, total


async def publish(bootstrap: str, records: list[dict]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                "raw-billing",
                json.dumps(r).encode(),
                key=f"{r['ProviderName']}:{r['SubAccountId']}".encode(),
            )
            for r in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def malformed_messages() -> dict[str, bytes]:
    """One message per kind of bad input that must end on `raw-billing.dlq`."""
    good = billed_records(1, seed=99)[0][0]

    def variant(**changes) -> bytes:
        row = {**good, "x_RecordId": f"bad-{len(changes)}-{sorted(changes)}"}
        for key, value in changes.items():
            if value is None:
                row.pop(key)
            else:
                row[key] = value
        return json.dumps(row).encode()

    return {
        "not json": b"this is not json {",
        "missing required field": variant(ProviderName=None),
        "non-numeric cost": variant(BilledCost="twelve dollars"),
        "unknown currency": variant(BillingCurrency="XXQ"),
        "period ends before it starts": variant(
            ChargePeriodStart="2020-02-10T05:00:00Z", ChargePeriodEnd="2020-02-10T01:00:00Z"
        ),
    }


async def publish_raw(bootstrap: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait("raw-billing", value, key=b"e2e:bad")
    finally:
        await producer.stop()


async def read_dead_letters(bootstrap: str, at_least: int, timeout: float = 30) -> list[dict]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        "raw-billing.dlq", bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    letters: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while len(letters) < at_least and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                letters += [json.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return letters


def cost_total(home: Path) -> Decimal | None:
    result = finfocus(
        home,
        "cost",
        "actual",
        "--from",
        "2020-02-01",
        "--to",
        "2020-03-01",
        "--output",
        "json",
        timeout=60,
    )
    if result.returncode != 0:
        return None
    return Decimal(json.loads(result.stdout)["summary"]["totalCost"] or "0")


def wait_total(home: Path, expected: Decimal, timeout: float = 90) -> Decimal | None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = cost_total(home)
        if seen == expected:
            return seen
        time.sleep(1)
    return seen


def demo_runs_the_whole_pipeline(home: Path) -> None:
    """`finfocus demo` on the running stack: import, costs to the cent, the EC2 spike found,
    a remediation command for it; a second run counts nothing twice."""
    from finfocus.sample_data import SPIKE_RESOURCE_ID

    demo = finfocus(home, "demo", "--timeout", "120", timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "reconciles to the cent" in demo.stdout, demo.stdout
    assert "finfocus down" in demo.stdout
    anomalies = json.loads(finfocus(home, "anomalies", "list", "--output", "json").stdout)[
        "anomalies"
    ]
    spiked = [
        a
        for a in anomalies
        if a["dimension"].get("SubAccountId") == "210987654321"
        and "Elastic Compute" in a["dimension"].get("ServiceName", "")
    ]
    assert spiked, anomalies
    causes = json.dumps(spiked[0].get("root_causes"))
    assert SPIKE_RESOURCE_ID in causes or spiked[0]["dimension"], causes
    commands = json.loads(finfocus(home, "remediation", "list", "--output", "json").stdout)[
        "commands"
    ]
    assert any(c["reason"].get("anomaly_id") == spiked[0]["anomaly_id"] for c in commands), commands
    # what a second `finfocus demo` does: the same sample imported again counts nothing twice
    sample = home / "demo" / "focus-demo.csv"
    again = finfocus(home, "ingest", str(sample), "--format", "focus", "--wait", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = list(csv.DictReader(sample.open()))
    expected = sum((Decimal(r["BilledCost"]) for r in rows), Decimal(0))
    first = min(r["ChargePeriodStart"][:10] for r in rows)
    last = max(r["ChargePeriodStart"][:10] for r in rows)
    end = (date.fromisoformat(last) + timedelta(days=1)).isoformat()
    result = finfocus(home, "cost", "actual", "--from", first, "--to", end, "--output", "json")
    assert Decimal(json.loads(result.stdout)["summary"]["totalCost"]) == expected


@pytest.fixture
def home():
    """A FINFOCUS_HOME outside pytest's numbered temp root: a concurrent pytest run resets
    that root to mode 0700, which would lock out the embedded PostgreSQL's system user."""
    path = Path(tempfile.mkdtemp(prefix="finfocus-e2e-"))
    yield path / "home"
    shutil.rmtree(path, ignore_errors=True)


def test_stack_up_prices_published_records_to_the_cent_then_down_leaves_nothing(home: Path):
    up = finfocus(home, "up", "--detach", "--timeout", "180")
    try:
        status = finfocus(home, "status", "--output", "json")
        assert status.returncode == 0, status.stderr
        body = json.loads(status.stdout)
        assert {"kafka_bootstrap", "database_url", "services"} <= set(body)  # status adds keys
        assert set(body["services"]) == set(SERVICES)
        assert body["kafka_bootstrap"].startswith("127.0.0.1:")
        assert (
            body["database_url"].startswith("postgresql://")
            and ":5432/" not in body["database_url"]
        )
        available = {s for s in SERVICES if (ROOT / "services" / s / "app.py").exists()}
        for name, state in body["services"].items():
            assert state == ("running" if name in available else "failed"), (
                name,
                state,
                up.stdout,
                up.stderr,
            )
        assert up.returncode == (0 if available == set(SERVICES) else 1), up.stderr
        assert (home / "logs" / "kafka.log").exists() and (home / "logs" / "pricing.log").exists()

        if "pricing" in available:
            records, total = billed_records(20_000)
            bad = malformed_messages()
            asyncio.run(publish(body["kafka_bootstrap"], records[:10_000]))
            asyncio.run(publish_raw(body["kafka_bootstrap"], list(bad.values())))
            asyncio.run(publish(body["kafka_bootstrap"], records[10_000:]))
            assert wait_total(home, total) == total
            letters = asyncio.run(read_dead_letters(body["kafka_bootstrap"], len(bad)))
            originals = {letter["original"]: letter for letter in letters}
            for case, raw in bad.items():
                letter = originals.get(raw.decode())
                assert letter is not None, (case, letters)
                assert letter["error"] and letter["source_topic"] == "raw-billing", (case, letter)
            # redelivering half of them changes nothing
            asyncio.run(publish(body["kafka_bootstrap"], records[::2]))
            time.sleep(3)
            assert cost_total(home) == total

        if available == set(SERVICES):
            demo_runs_the_whole_pipeline(home)
    finally:
        state = (
            json.loads((home / "run" / "stack.json").read_text())
            if (home / "run" / "stack.json").exists()
            else {}
        )
        down = finfocus(home, "down")
    assert down.returncode == 0, down.stderr
    pids = [
        state.get("supervisor", {}).get("pid"),
        (state.get("kafka") or {}).get("pid"),
        (state.get("postgres") or {}).get("pid"),
    ]
    pids += [e.get("pid") for e in (state.get("services") or {}).values()]
    assert not [
        p
        for p in pids
        if p and psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert left_behind(home) == []
    assert not (home / "run" / "stack.json").exists()
    after = finfocus(home, "status", "--output", "json")
    assert after.returncode == 1


def test_stack_on_an_external_broker_and_database_leaves_them_running(
    home: Path, kafka_bootstrap: str, database_url: str
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
    env.update(
        FINFOCUS_HOME=str(home),
        FINFOCUS_KAFKA_BOOTSTRAP=kafka_bootstrap,
        FINFOCUS_DATABASE_URL=database_url,
        # the fixture's broker is Tansu too: its short group timeouts, passed on to the services
        FINFOCUS_KAFKA_SESSION_TIMEOUT_MS="1500",
        FINFOCUS_KAFKA_HEARTBEAT_INTERVAL_MS="500",
    )
    cli = [sys.executable, "-m", "finfocus.cli"]
    up = subprocess.run(
        cli + ["up", "--detach"], env=env, capture_output=True, text=True, timeout=240
    )
    state = json.loads((home / "run" / "stack.json").read_text())
    down = subprocess.run(cli + ["down"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    assert state["kafka_owned"] is False and state["postgres_owned"] is False
    assert state["kafka_bootstrap"] == kafka_bootstrap and state["database_url"] == database_url
    assert not (home / "logs" / "kafka.log").exists() and not (home / "postgres").exists()
    assert down.returncode == 0 and "broker" not in down.stdout and "postgres" not in down.stdout
    assert left_behind(home) == []

    async def still_there() -> None:
        import asyncpg
        from aiokafka.admin import AIOKafkaAdminClient

        conn = await asyncpg.connect(database_url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        assert "raw-billing" in await admin.list_topics()
        await admin.close()

    asyncio.run(still_there())
