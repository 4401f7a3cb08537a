"""Several instances of a service (`finfocus up --replicas`, `finfocus scale`), with stand-in
service processes that write their ready marker like `serve` does (under their instance name)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from finfocus.embedded import stack as stack_module
from finfocus.embedded.health import health_file, instance_name, service_health, service_of
from finfocus.embedded.stack import EmbeddedStack, instance_names, parse_replicas, scale_request
from finfocus.embedded.state import StateFile
from finfocus.settings import FinFocusSettings

CHILD = """
import os, sys, time, pathlib
home = pathlib.Path(os.environ["FINFOCUS_HOME"])
name = os.environ.get("FINFOCUS_SERVICE_INSTANCE") or sys.argv[-1]
(home / "run" / f"{name}.ready").write_text(str(os.getpid()))
time.sleep(60)
"""


def test_replicas_are_parsed_and_checked():
    assert parse_replicas("pricing=2, anomaly=3", 4) == {"pricing": 2, "anomaly": 3}
    assert parse_replicas("", 4) == {}
    for bad, why in [
        ("pricing", "SERVICE=COUNT"),
        ("ingest=2", "cannot run as several"),
        ("api=2", "cannot run as several"),
        ("pricing=5", "between 1 and 4"),
        ("pricing=0", "between 1 and 4"),
        ("pricing=x", "SERVICE=COUNT"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_replicas(bad, 4)


def test_instance_names():
    assert instance_names(("ingest", "pricing"), {"pricing": 3}) == (
        "ingest",
        "pricing",
        "pricing-2",
        "pricing-3",
    )
    assert [service_of(n) for n in ("pricing", "pricing-2", "pricing-12")] == ["pricing"] * 3
    assert instance_name("anomaly", 1) == "anomaly" and instance_name("anomaly", 2) == "anomaly-2"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(
        stack_module, "serve_command", lambda name: [sys.executable, "-c", CHILD, name]
    )
    monkeypatch.setattr(EmbeddedStack, "_ensure_topics", lambda self: None)
    monkeypatch.setenv("FINFOCUS_PROMETHEUS", "off")
    settings = FinFocusSettings(
        home=tmp_path / "home",
        kafka_bootstrap="kafka.example:9092",
        database_url="postgresql://app:secret@db.example:5432/finfocus",
    )
    s = EmbeddedStack(settings, services=("ingest", "pricing"), replicas={"pricing": 2})
    yield s
    s.shutdown()


def run_until(stack: EmbeddedStack, done, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.tick()
        if done():
            return True
        time.sleep(0.05)
    return False


def test_every_instance_is_supervised_and_scaled_on_request(stack: EmbeddedStack):
    stack.start()
    assert run_until(stack, lambda: stack.state.get("phase") == "running")
    state = StateFile(stack.home / "run" / "stack.json").read()
    assert list(state["services"]) == ["ingest", "pricing", "pricing-2"]
    assert {n: e["service"] for n, e in state["services"].items()} == {
        "ingest": "ingest",
        "pricing": "pricing",
        "pricing-2": "pricing",
    }
    assert state["replicas"] == {"pricing": 2}
    pids = {n: e["pid"] for n, e in state["services"].items()}
    assert len(set(pids.values())) == 3
    assert (stack.home / "logs" / "pricing-2.log").exists()

    # each instance's health file (named after its service and pid) shows in status
    for name in ("pricing", "pricing-2"):
        path = health_file(stack.home, "pricing", pids[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        part = 0 if name == "pricing" else 1
        path.write_text(
            json.dumps(
                {
                    "updated_at": time.time(),
                    "state": "running",
                    "consumers": [
                        {
                            "group": "finfocus-pricing",
                            "topic": "raw-billing",
                            "partition": part,
                            "lag": 0,
                        }
                    ],
                }
            )
        )
    rows = service_health(stack.home, state["services"])["consumers"]
    assert [(r["instance"], r["service"], r["partition"], r["pid"]) for r in rows] == [
        ("pricing", "pricing", 0, pids["pricing"]),
        ("pricing-2", "pricing", 1, pids["pricing-2"]),
    ]

    # `finfocus scale pricing=3`, then back to 1
    scale_request(stack.home).write_text(json.dumps({"pricing": 3}))
    assert run_until(
        stack, lambda: (stack.state["services"].get("pricing-3") or {}).get("state") == "running"
    )
    assert stack.state["replicas"] == {"pricing": 3} and not scale_request(stack.home).exists()
    gone = stack.supervisor.slots["pricing-3"].process
    time.sleep(0.05)  # a new request has a new modification time
    scale_request(stack.home).write_text(json.dumps({"pricing": 1}))
    assert run_until(stack, lambda: list(stack.state["services"]) == ["ingest", "pricing"])
    assert gone.poll() is not None  # stopped, not only forgotten
    assert not (stack.home / "run" / "pricing-3.ready").exists()


def test_a_bad_scale_request_is_reported_and_changes_nothing(stack: EmbeddedStack):
    stack.start()
    assert run_until(stack, lambda: stack.state.get("phase") == "running")
    scale_request(stack.home).write_text(json.dumps({"ingest": 2}))
    assert run_until(stack, lambda: "scale_error" in stack.state)
    assert "cannot run as several instances" in stack.state["scale_error"]
    assert list(stack.state["services"]) == ["ingest", "pricing", "pricing-2"]


def test_the_broker_loss_window_reads_every_pricing_instance(stack: EmbeddedStack):
    """raw-billing is shared by the pricing instances: what pricing had consumed when the
    broker died (the window `status` reports) comes from all of them, and the quiescent point
    needs every instance at lag 0."""
    stack.start()
    assert run_until(stack, lambda: stack.state.get("phase") == "running")
    slots = stack.supervisor.slots

    def report(name: str, partition: int, lag: int, at: str) -> None:
        path = health_file(stack.home, service_of(name), slots[name].process.pid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "updated_at": at,
                    "state": "running",
                    "consumers": [
                        {
                            "group": "finfocus-pricing",
                            "topic": "raw-billing",
                            "partition": partition,
                            "committed": 10 + partition,
                            "lag": lag,
                        }
                    ],
                }
            )
        )

    report("ingest", 9, 0, "2026-01-01T10:00:00+00:00")
    report("pricing", 0, 0, "2026-01-01T10:00:01+00:00")
    report("pricing-2", 1, 7, "2026-01-01T10:00:02+00:00")
    position = stack._raw_billing_position()
    assert position["raw_billing_committed"] == {"0": 10, "1": 11}
    assert position["raw_billing_unconsumed"] == 7
    assert position["raw_billing_reported_at"] == "2026-01-01T10:00:01+00:00"  # the oldest report
    # the quiescent point is watched for a broker the stack owns: a stand-in for one
    stack.kafka = SimpleNamespace(process=SimpleNamespace(poll=lambda: None), stop=lambda: None)
    stack._watch_quiescent(force=True)
    assert "quiescent_at" not in stack.state  # pricing-2 still had rows to consume
    report("pricing-2", 1, 0, "2026-01-01T10:00:03+00:00")
    stack._watch_quiescent(force=True)
    assert stack.state["quiescent_at"] == "2026-01-01T10:00:00+00:00"
