"""Scale-out on the bus: no row lost or stored twice across consumer-group rebalances.

A real embedded stack (`finfocus up --detach`: its own Tansu broker, a fresh database on the
test PostgreSQL) runs pricing as one instance. Billed rows are published straight on
raw-billing at a steady pace; a fifth of the way in, `finfocus scale pricing=2` adds an
instance (the group rebalances: it takes half the partitions); once it holds partitions, the
first instance is killed with SIGKILL by its pid (its partitions go to the other at once when
its session expires, and back when the supervisor has restarted it: two more rebalances while
rows flow). Afterwards pricing's stored lines, and the copies anomaly, forecast and remediation
keep, hold every row once and add up to the input's total to the cent (Decimal); anomaly's
daily points (the one default monitor sums every line) too. Both pricing instances rebuild
the daily aggregate the api reads (pricing.v_daily_costs, v_daily_rollups) from the days their
writes marked: once no day is left marked, each day of it equals the sum of that day's stored
lines, to the cent and line for line.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale import CENT, ScaleStack, billed, publish, wait_copies  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROWS = 6000
RATE = 600.0  # rows/s: the stream lasts ~10 s, long enough for two rebalances inside it


@pytest.fixture
def stack(tmp_path: Path, database_url: str):
    tmp_path.chmod(0o755)
    made = ScaleStack(tmp_path, database_url)
    try:
        # the services the lines go through (no ingest: rows come straight on raw-billing; no api)
        made.up(only="pricing,anomaly,forecast,remediation")
        yield made
    finally:
        made.down()


def _wait(predicate, timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def _split(assignment: dict[str, list[int]], partitions: int) -> bool:
    """Both instances hold partitions, each partition exactly one of them."""
    held = sorted(p for parts in assignment.values() for p in parts)
    return set(assignment) == {"pricing", "pricing-2"} and held == list(range(partitions))


def test_an_instance_added_and_one_killed_mid_stream_lose_and_double_nothing(
    stack: ScaleStack, database_url: str
):
    rows = billed(ROWS, "acct-scale")
    partitions = stack.partitions()
    sent = {"n": 0}
    seen: dict[str, object] = {}
    done = threading.Event()

    def progress(n: int) -> float:
        """The stream's pace: steady, but only a trickle past half-way until the faults are
        in, so that both happen while rows flow whatever the machine's load."""
        sent["n"] = n
        return RATE if done.is_set() or n < ROWS // 2 else RATE / 10

    def faults() -> None:
        """Scale up at a fifth of the stream, kill the first instance once the new one
        holds partitions; records what it saw for the assertions."""
        try:
            _wait(lambda: sent["n"] >= ROWS // 5, 60)
            seen["scaled_at"] = sent["n"]
            stack.scale("pricing=2")
            _wait(
                lambda: _split(stack.assignment("finfocus-pricing", "raw-billing"), partitions), 30
            )
            seen["split"] = stack.assignment("finfocus-pricing", "raw-billing")
            seen["killed_pid"] = stack.kill("pricing")
            seen["killed_at"] = sent["n"]
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            seen["error"] = repr(exc)
        finally:
            done.set()

    injector = threading.Thread(target=faults, daemon=True)
    injector.start()
    seen["stream_s"] = round(
        asyncio.run(publish(stack.bootstrap, rows.records, rate=RATE, progress=progress)), 1
    )
    injector.join(timeout=60)
    assert "error" not in seen, seen

    async def settle():
        conn = await asyncpg.connect(database_url)
        try:
            reached, found = await wait_copies(conn, rows, timeout=45)
            # anomaly's daily points of its default monitor add every (non-recurring) line up
            points = await conn.fetchval("SELECT coalesce(sum(cost), 0) FROM anomaly.series_points")
            return reached, found, Decimal(points)
        finally:
            await conn.close()

    reached, found, points = asyncio.run(settle())
    aggregate = asyncio.run(daily_aggregate(database_url))
    print(
        "faults and stream:",
        seen,
        "seconds after the stream until each copy was complete:",
        reached,
    )
    # the faults happened while rows were still flowing, after the new instance took partitions
    assert ROWS // 5 <= seen["scaled_at"] < seen["killed_at"] < ROWS, seen
    assert _split(seen["split"], partitions), seen  # type: ignore[arg-type]
    # the supervisor started the killed instance again
    assert _wait(
        lambda: (
            (stack.state()["services"].get("pricing") or {}).get("state") == "running"
            and stack.pid("pricing") != seen["killed_pid"]
        ),
        30,
    )
    # every copy: every row once, the total to the cent
    expected = {name: (ROWS, ROWS, rows.total.quantize(CENT)) for name in found}
    assert {name: (c, d, t.quantize(CENT)) for name, (c, d, t) in found.items()} == expected, (
        reached
    )
    assert points.quantize(CENT) == rows.total.quantize(CENT)
    # pricing's daily aggregate, rebuilt by both instances meanwhile: every day is the sum of
    # its lines (the stack holds this test's rows only), and the whole adds up to the input
    assert aggregate["marked"] == 0, aggregate
    assert aggregate["costs"] == aggregate["lines"], aggregate
    assert aggregate["by_service"] == aggregate["lines"], aggregate
    assert len(aggregate["lines"]) == 28, aggregate
    total = sum((t for t, _ in aggregate["costs"].values()), Decimal(0))
    assert sum(n for _, n in aggregate["costs"].values()) == ROWS
    assert total.quantize(CENT) == rows.total.quantize(CENT)


async def daily_aggregate(url: str, timeout: float = 60.0) -> dict:
    """Per day (billed total to the cent, lines): from pricing's stored lines, its daily
    aggregate and the aggregate's rollup by service, once the refresh has no day marked (or
    the timeout passed: `marked` says how many were left)."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            marked = await conn.fetchval("SELECT count(*) FROM pricing.v_dirty_days")
            if not marked or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)

        async def per_day(sql: str) -> dict:
            return {r[0]: (Decimal(r[1]).quantize(CENT), r[2]) for r in await conn.fetch(sql)}

        return {
            "marked": marked,
            "lines": await per_day(
                "SELECT (charge_period_start AT TIME ZONE 'UTC')::date, sum(billed_cost), count(*)"
                " FROM pricing.v_cost_lines GROUP BY 1"
            ),
            "costs": await per_day(
                "SELECT day, sum(billed_cost), sum(lines) FROM pricing.v_daily_costs GROUP BY 1"
            ),
            "by_service": await per_day(
                "SELECT day, sum(billed_cost), sum(lines) FROM pricing.v_daily_rollups"
                " WHERE dim = 'service' GROUP BY 1"
            ),
        }
    finally:
        await conn.close()


async def test_topics_carry_the_retention_finfocus_sets(kafka_bootstrap: str, monkeypatch):
    """retention.ms and retention.bytes (settings, env overrides) are set on every topic
    FinFocus creates, as the broker reports them back (the embedded Tansu stores them but does
    not enforce them: docs/operations.md, "Broker retention")."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from finfocus.broker import ensure_topics
    from finfocus.settings import FinFocusSettings
    from schemas.topics import Topics

    monkeypatch.setenv("FINFOCUS_TOPIC_RETENTION_MS", "3600000")
    monkeypatch.setenv("FINFOCUS_TOPIC_RETENTION_BYTES", "52428800")
    settings = FinFocusSettings(kafka_bootstrap=kafka_bootstrap)
    await ensure_topics(kafka_bootstrap, settings.partitions, configs=settings.topic_configs())
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        names = [Topics.RAW_BILLING, Topics.PRICED_RESOURCES, Topics.dlq(Topics.RAW_BILLING)]
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    found = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in responses
        for resource in response.resources
    }
    for name in names:
        assert found[name]["retention.ms"] == "3600000", found
        assert found[name]["retention.bytes"] == "52428800", found
        assert found[name]["cleanup.policy"] == "delete", found
