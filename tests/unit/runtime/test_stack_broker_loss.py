"""Broker loss on the embedded stack: every service is stopped, the broker replaced, the
epoch bumped and handed to the services, which start again (stand-in processes)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from finfocus.embedded import kafka as kafka_module
from finfocus.embedded import stack as stack_module
from finfocus.embedded.health import health_file
from finfocus.embedded.stack import EmbeddedStack, broker_status
from finfocus.embedded.supervisor import RestartPolicy
from finfocus.settings import FinFocusSettings

CHILD = """
import os, sys, time, pathlib
name = sys.argv[-1]
home = pathlib.Path(os.environ["FINFOCUS_HOME"])
(home / "run" / f"{name}.epoch-{os.getpid()}").write_text(os.environ.get("FINFOCUS_BROKER_EPOCH", ""))
(home / "run" / f"{name}.ready").write_text(str(os.getpid()))
time.sleep(60)
"""


@dataclass
class FakeBrokerProcess:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class FakeBroker:
    process: FakeBrokerProcess
    port: int = 9092

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.code = 0


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch):
    import os

    monkeypatch.setattr(
        stack_module, "serve_command", lambda name: [sys.executable, "-c", CHILD, name]
    )
    monkeypatch.setattr(EmbeddedStack, "_ensure_topics", lambda self: None)
    brokers: list[FakeBroker] = []

    def start_kafka(log_path=None, port=None):
        brokers.append(FakeBroker(FakeBrokerProcess(os.getpid()), port or 9092))
        return brokers[-1]

    monkeypatch.setattr(kafka_module, "start_kafka", start_kafka)
    settings = FinFocusSettings(
        home=tmp_path / "home", database_url="postgresql://app@db.example/finfocus"
    )
    s = EmbeddedStack(
        settings, services=("ingest", "pricing"), policy=RestartPolicy(base_delay=0.01)
    )
    s.start()
    yield s, brokers
    s.shutdown()


def test_dead_broker_restarts_every_service_with_a_new_epoch(stack):
    s, brokers = stack
    home = s.home
    _wait(lambda: (s.tick() or True) and s.supervisor.settled())
    before = {name: slot.process.pid for name, slot in s.supervisor.slots.items()}
    assert s.state["broker_epoch"] == 1
    (home / "run" / "health").mkdir(parents=True, exist_ok=True)

    def report(at: str, committed: int, log_end: int) -> None:
        health_file(home, "pricing", before["pricing"]).write_text(
            json.dumps(
                {
                    "service": "pricing",
                    "pid": before["pricing"],
                    "updated_at": at,
                    "state": "running",
                    "consumers": [
                        {
                            "group": "finfocus-pricing",
                            "topic": "raw-billing",
                            "partition": 0,
                            "committed": committed,
                            "log_end": log_end,
                            "lag": log_end - committed,
                        },
                    ],
                }
            )
        )

    report("2026-01-01T09:59:00+00:00", 7, 7)  # all consumed: the supervisor notes the time
    s._raw_billing_checked = 0.0
    s.tick()
    report("2026-01-01T10:00:00+00:00", 7, 9)  # then 2 rows arrive and are not consumed

    brokers[0].process.code = -9  # kill -9
    s.tick()

    assert len(brokers) == 2 and brokers[1].port == brokers[0].port
    after = {name: slot.process.pid for name, slot in s.supervisor.slots.items()}
    assert all(after[name] != before[name] for name in before)
    assert not any(stack_module.ProcessRef.of(pid) for pid in before.values())
    assert s.state["broker_epoch"] == 2
    assert (home / "run" / "broker_epoch").read_text() == "2"
    _wait(lambda: all((home / "run" / f"{n}.epoch-{pid}").exists() for n, pid in after.items()))
    assert {(home / "run" / f"{n}.epoch-{pid}").read_text() for n, pid in after.items()} == {"2"}
    saved = json.loads((home / "run" / "stack.json").read_text())
    [restart] = saved["broker_restarts"]
    assert restart["epoch"] == 2 and restart["raw_billing_unconsumed"] == 2
    assert restart["raw_billing_committed"] == {"0": 7}
    shown = broker_status(saved)
    assert shown["epoch"] == 2
    lost = shown["restarts"][0]["lost"]
    assert "between 2026-01-01T09:59:00+00:00 and" in lost
    assert "2 were waiting at 2026-01-01T10:00:00+00:00" in lost
    assert shown["restarts"][0]["unrecoverable_to"] == restart["at"]


def test_the_epoch_keeps_counting_across_stack_runs(stack, tmp_path):
    s, _ = stack
    assert s.state["broker_epoch"] == 1
    s.shutdown()
    again = EmbeddedStack(s.settings, services=("ingest",), policy=RestartPolicy(base_delay=0.01))
    again.start()
    try:
        assert again.state["broker_epoch"] == 2
    finally:
        again.shutdown()
