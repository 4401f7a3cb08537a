"""kill -9 of the embedded broker under a running stack: every service is restarted with a
new broker epoch, and the consumer groups read the new log from offset 0 (no stale offset
from the old broker is committed onto the new one, so nothing published there is skipped)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from finfocus.embedded.health import read_health
from finfocus.embedded.stack import start_detached, stop_stack
from finfocus.embedded.state import StateFile
from finfocus.settings import FinFocusSettings

TOPIC = "priced-resources"  # consumed by anomaly and forecast


async def _publish(bootstrap: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            # not a valid record: dead-lettered and committed, which is all this test needs
            await producer.send_and_wait(TOPIC, json.dumps({"probe": i}).encode(), partition=0)
    finally:
        await producer.stop()


def _committed(home: Path, state: dict) -> dict[str, int | None]:
    """Committed offset of TOPIC[0] per service that reports it."""
    out = {}
    for name, entry in (state.get("services") or {}).items():
        report = read_health(home, name, entry.get("pid")) if entry.get("pid") else None
        for c in (report or {}).get("consumers") or []:
            if c["topic"] == TOPIC and c["partition"] == 0:
                out[name] = c["committed"]
    return out


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _all_committed(home: Path, state_file: StateFile, offset: int) -> dict[str, int | None]:
    """Wait until every consumer of TOPIC[0] committed `offset`; their commits."""
    return _wait_for(
        lambda: (
            (c := _committed(home, state_file.read()))
            and all(v == offset for v in c.values())
            and c
        ),
        60,
        f"the consumers of priced-resources[0] to commit offset {offset}",
    )


@pytest.fixture
def stack(tmp_path: Path, database_url: str, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("FINFOCUS_HOME", str(home))
    monkeypatch.setenv("FINFOCUS_DATABASE_URL", database_url)
    monkeypatch.delenv("FINFOCUS_KAFKA_BOOTSTRAP", raising=False)
    settings = FinFocusSettings()
    # what a supervisor killed in the middle of a broker rotation leaves behind
    (home / "run").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    (home / "run" / "broker-rotation.bin").write_bytes(b"\0" * 4096)
    start_detached(settings, timeout=120)
    try:
        yield home, StateFile(home / "run" / "stack.json")
    finally:
        stop_stack(settings, timeout=30)


def test_killed_broker_restarts_services_with_a_new_epoch_reading_from_offset_zero(stack):
    home, state_file = stack
    # the new broker starts a new log: an unfinished rotation's copy is of no use and goes
    assert not (home / "run" / "broker-rotation.bin").exists()
    before = state_file.read()
    epoch = before["broker_epoch"]
    asyncio.run(_publish(before["kafka_bootstrap"], 30))
    consumers = _all_committed(home, state_file, 30)

    os.kill(before["kafka"]["pid"], signal.SIGKILL)

    after = _wait_for(
        lambda: (
            (s := state_file.read()).get("broker_epoch") == epoch + 1
            and all(e.get("state") == "running" for e in s["services"].values())
            and s
        ),
        90,
        "every service running again on a new broker",
    )
    assert after["kafka"]["pid"] != before["kafka"]["pid"]
    assert after["kafka_bootstrap"] == before["kafka_bootstrap"]
    for name, entry in after["services"].items():
        assert entry["pid"] != before["services"][name]["pid"], name
        environ = Path(f"/proc/{entry['pid']}/environ").read_bytes().split(b"\0")
        assert f"FINFOCUS_BROKER_EPOCH={epoch + 1}".encode() in environ, name
    [restart] = after["broker_restarts"]
    assert restart["epoch"] == epoch + 1

    # the groups start afresh on the new log: no offset 30 carried over from the old broker
    fresh = _wait_for(
        lambda: (c := _committed(home, state_file.read())) and set(c) == set(consumers) and c,
        30,
        "health reports of the restarted consumers",
    )
    assert all(v is None or v == 0 for v in fresh.values()), fresh
    asyncio.run(_publish(after["kafka_bootstrap"], 5))
    _all_committed(home, state_file, 5)  # the 5 new records read from offset 0


def _dead_letters(bootstrap: str) -> int:
    """Records on the dead-letter topic, read (Tansu's `end_offsets` counts batches short)."""

    async def count() -> int:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(f"{TOPIC}.dlq", p) for p in range(4)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            seen = 0
            for _ in range(40):
                seen += sum(len(m) for m in (await consumer.getmany(timeout_ms=200)).values())
                highs = [consumer.highwater(tp) for tp in tps]
                if None not in highs and all(
                    [await consumer.position(tp) >= h for tp, h in zip(tps, highs, strict=True)]
                ):
                    return seen
            raise AssertionError("the dead-letter topic could not be read to its end")
        finally:
            await consumer.stop()

    return asyncio.run(count())


def test_a_rotation_drops_what_was_consumed_and_the_groups_resume_where_they_were(stack):
    """The bounded-memory rotation (FINFOCUS_BROKER_ROTATE_MB, or run/broker-rotate): same
    epoch, no recovery, the dead letters kept, and the consumers neither skip nor re-read."""
    home, state_file = stack
    before = state_file.read()
    asyncio.run(_publish(before["kafka_bootstrap"], 30))
    consumers = _all_committed(home, state_file, 30)
    letters = _wait_for(
        lambda: (n := _dead_letters(before["kafka_bootstrap"])) >= 30 and n,
        30,
        "the dead letters of the 30 probes",
    )

    (home / "run" / "broker-rotate").touch()

    after = _wait_for(
        lambda: (
            (s := state_file.read()).get("broker_rotations")
            and all(e.get("state") == "running" for e in s["services"].values())
            and s
        ),
        120,
        "a rotation and every service running again",
    )
    [rotation] = after["broker_rotations"]
    assert not rotation.get("failed") and not rotation.get("deferred"), rotation
    assert rotation["dropped"] >= 30 and rotation["kept"] >= letters, rotation
    assert after["kafka"]["pid"] != before["kafka"]["pid"]
    assert after["kafka_bootstrap"] == before["kafka_bootstrap"]
    # nothing was lost: no new epoch, no recovery to run
    assert after["broker_epoch"] == before["broker_epoch"]
    assert not after.get("broker_restarts") and not after.get("recovery_pending")
    assert _dead_letters(after["kafka_bootstrap"]) == letters

    # the 30 probes are gone, and each group's commit moved with them: 5 more are read once
    asyncio.run(_publish(after["kafka_bootstrap"], 5))
    assert set(_all_committed(home, state_file, 5)) == set(consumers)
    _wait_for(
        lambda: _dead_letters(after["kafka_bootstrap"]) >= letters + 5,
        30,
        "the dead letters of the 5 new probes after the kept ones",
    )
