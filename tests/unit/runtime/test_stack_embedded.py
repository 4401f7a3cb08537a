"""EmbeddedStack with stand-in service processes: readiness markers, state file, clean-up.

The broker and database are "external" here (given by settings), so nothing listens on a
socket; each service is a tiny Python child that writes its ready marker like `serve` does.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finfocus.embedded import stack as stack_module
from finfocus.embedded.stack import EmbeddedStack, StackError, cleanup, public_status, ready_marker
from finfocus.embedded.state import ProcessRef, StateFile
from finfocus.embedded.supervisor import EXIT_CONFIG, RestartPolicy
from finfocus.settings import FinFocusSettings

CHILD = """
import os, sys, time, pathlib
name = sys.argv[-1]
if name == "broken":
    sys.exit(78)
if name == "crashy":
    sys.exit(1)
home = pathlib.Path(os.environ["FINFOCUS_HOME"])
assert os.environ["FINFOCUS_KAFKA_BOOTSTRAP"] == "kafka.example:9092"
(home / "run" / f"{name}.ready").write_text(str(os.getpid()))
time.sleep(60)
"""


@pytest.fixture
def stack(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(
        stack_module, "serve_command", lambda name: [sys.executable, "-c", CHILD, name]
    )
    monkeypatch.setattr(EmbeddedStack, "_ensure_topics", lambda self: None)
    monkeypatch.setenv("FINFOCUS_PROMETHEUS", "off")  # stand-in services have no metrics
    settings = FinFocusSettings(
        home=tmp_path / "home",
        kafka_bootstrap="kafka.example:9092",
        database_url="postgresql://app:secret@db.example:5432/finfocus",
    )
    made = []

    def make(services):
        s = EmbeddedStack(
            settings, services=services, policy=RestartPolicy(base_delay=0.01, max_crashes=2)
        )
        made.append(s)
        return s

    yield make
    for s in made:
        s.shutdown()


def run_until(stack: EmbeddedStack, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        stack.tick()
        time.sleep(0.05)


def test_services_become_running_once_they_write_their_ready_marker(stack):
    s = stack(("ingest", "pricing", "broken", "crashy"))
    s.start()
    run_until(s, lambda: s.state.get("phase") == "running")
    state = StateFile(s.home / "run" / "stack.json").read()
    assert state["phase"] == "running"
    assert public_status(state) == {
        "kafka_bootstrap": "kafka.example:9092",
        "database_url": "postgresql://app:***@db.example:5432/finfocus",
        "api_url": None,  # no api among these services
        "services": {
            "ingest": "running",
            "pricing": "running",
            "broken": "failed",
            "crashy": "failed",
        },
    }
    assert state["services"]["broken"]["last_exit"] == EXIT_CONFIG
    assert state["services"]["crashy"]["restarts"] == 1
    assert state["kafka_owned"] is False and state["postgres_owned"] is False
    assert (s.home / "logs" / "ingest.log").exists()


def test_shutdown_stops_children_and_forgets_the_state(stack):
    s = stack(("ingest",))
    s.start()
    run_until(s, lambda: s.state.get("phase") == "running")
    ref = ProcessRef.from_dict(s.state["services"]["ingest"])
    assert ref.alive()
    s.shutdown()
    assert not ref.alive()
    assert not (s.home / "run" / "stack.json").exists()
    assert not ready_marker(s.home, "ingest").exists()


def test_cleanup_after_a_dead_supervisor_stops_its_children(stack):
    s = stack(("ingest", "pricing"))
    s.start()
    run_until(s, lambda: s.state.get("phase") == "running")
    state = StateFile(s.home / "run" / "stack.json").read()
    refs = [ProcessRef.from_dict(e) for e in state["services"].values()]
    # as if the supervisor had been killed: only the state file is left to go by
    assert sorted(cleanup(state, s.home)) == ["service ingest", "service pricing"]
    assert not any(r.alive() for r in refs)
    s.supervisor = None  # nothing left for the fixture's shutdown


def test_a_second_stack_on_the_same_home_is_refused(stack):
    first = stack(("ingest",))
    first.start()
    with pytest.raises(StackError, match="already running"):
        stack(("ingest",)).start()


@pytest.fixture
def keep_root_logging():
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_serve_rejects_an_unknown_service_and_reports_a_missing_one(
    monkeypatch, tmp_path, keep_root_logging
):
    from finfocus.cli import app

    monkeypatch.setenv("FINFOCUS_HOME", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["serve", "nope"]).exit_code == 2

    import importlib

    real = importlib.import_module

    def fake_import(name, *args):
        if name == "services.ingest.app":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    result = runner.invoke(app, ["serve", "ingest"])
    assert result.exit_code == EXIT_CONFIG
    assert "not available" in result.output


def test_status_exits_1_when_nothing_runs(monkeypatch, tmp_path):
    from finfocus.cli import app

    monkeypatch.setenv("FINFOCUS_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["status", "--output", "json"])
    assert result.exit_code == 1


def test_children_get_the_embedded_profile_only_on_the_embedded_broker(tmp_path):
    settings = FinFocusSettings(
        home=tmp_path, kafka_bootstrap="k:9092", database_url="postgresql://d"
    )
    s = EmbeddedStack(settings)
    s.state = {"kafka_bootstrap": "k:9092", "database_url": "postgresql://d", "kafka_owned": False}
    env = s._children_environment()
    assert (
        env["FINFOCUS_KAFKA_BOOTSTRAP"] == "k:9092"
        and env["FINFOCUS_DATABASE_URL"] == "postgresql://d"
    )
    assert env["FINFOCUS_HOME"] == str(tmp_path.resolve())
    assert "FINFOCUS_KAFKA_SESSION_TIMEOUT_MS" not in env or os.environ.get(
        "FINFOCUS_KAFKA_SESSION_TIMEOUT_MS"
    )
    s.state["kafka_owned"] = True
    env = s._children_environment()
    assert env["FINFOCUS_KAFKA_SESSION_TIMEOUT_MS"] == "1500"
    assert env["FINFOCUS_KAFKA_HEARTBEAT_INTERVAL_MS"] == "500"
