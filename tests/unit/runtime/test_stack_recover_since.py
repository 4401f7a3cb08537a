"""After a broker loss the services get FINFOCUS_BROKER_RECOVER_SINCE: the quiescent point
(every consumer of every service at lag 0), held while pricing's recovery is pending."""

from __future__ import annotations

import json
import sys

from finfocus.embedded import stack as stack_module
from finfocus.embedded.health import health_file
from tests.unit.runtime.test_stack_broker_loss import _wait, stack  # noqa: F401 - the fixture

CHILD = """
import os, sys, time, pathlib
name = sys.argv[-1]
home = pathlib.Path(os.environ["FINFOCUS_HOME"])
(home / "run" / f"{name}.since-{os.getpid()}").write_text(os.environ.get("FINFOCUS_BROKER_RECOVER_SINCE", "-"))
(home / "run" / f"{name}.ready").write_text(str(os.getpid()))
time.sleep(60)
"""


def _report(s, at: str, lag: int) -> None:
    (s.home / "run" / "health").mkdir(parents=True, exist_ok=True)
    for name, slot in s.supervisor.slots.items():
        health_file(s.home, name, slot.process.pid).write_text(
            json.dumps(
                {
                    "service": name,
                    "pid": slot.process.pid,
                    "updated_at": at,
                    "state": "running",
                    "consumers": [
                        {"group": f"finfocus-{name}", "topic": "t", "partition": 0, "lag": lag}
                    ],
                }
            )
        )
    s._quiescent_checked = 0.0
    s.tick()


def _kill_broker(s, brokers) -> dict[str, str]:
    brokers[-1].process.code = -9
    s.tick()
    pids = {n: slot.process.pid for n, slot in s.supervisor.slots.items()}
    files = {n: s.home / "run" / f"{n}.since-{pid}" for n, pid in pids.items()}
    _wait(lambda: all(f.exists() for f in files.values()))
    return {n: f.read_text() for n, f in files.items()}


def test_the_quiescent_point_is_handed_over_and_a_second_loss_during_recovery_keeps_it(
    stack,  # noqa: F811
    monkeypatch,
):
    s, brokers = stack
    monkeypatch.setattr(
        stack_module, "serve_command", lambda name: [sys.executable, "-c", CHILD, name]
    )
    _wait(lambda: (s.tick() or True) and s.supervisor.settled())
    _report(s, "2026-01-01T09:59:00+00:00", 0)  # everything consumed
    _report(s, "2026-01-01T10:00:00+00:00", 5)  # then not
    assert s.state["quiescent_at"] == "2026-01-01T09:59:00+00:00"

    pending = {"done": False}
    monkeypatch.setattr(s, "_recovery_finished", lambda epoch: pending["done"])
    assert set(_kill_broker(s, brokers).values()) == {"2026-01-01T09:59:00+00:00"}
    # the new broker is empty (lag 0 at once) but pricing has not re-published yet: held
    _report(s, "2026-01-01T10:05:00+00:00", 0)
    assert s.state["quiescent_at"] == "2026-01-01T09:59:00+00:00"
    assert set(_kill_broker(s, brokers).values()) == {"2026-01-01T09:59:00+00:00"}
    assert s.state["broker_restarts"][-1]["recover_since"] == "2026-01-01T09:59:00+00:00"

    pending["done"] = True  # pricing's recovery of the last epoch completed
    _report(s, "2026-01-01T10:10:00+00:00", 0)
    assert s.state["quiescent_at"] == "2026-01-01T10:10:00+00:00"
    assert set(_kill_broker(s, brokers).values()) == {"2026-01-01T10:10:00+00:00"}
