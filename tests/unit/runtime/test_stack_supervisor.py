"""Supervisor logic: backoff, failure after repeated crashes, readiness, stop (fake processes)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

from finfocus.embedded.state import FAILED, RESTARTING, RUNNING, STARTING, STOPPED
from finfocus.embedded.supervisor import EXIT_CONFIG, RestartPolicy, Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    _next_pid = 100

    def __init__(self) -> None:
        FakeProcess._next_pid += 1
        self.pid = FakeProcess._next_pid
        self.code: int | None = None
        self.terminated = False
        self.killed = False

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.terminated = True
        self.code = -15

    def kill(self) -> None:
        self.killed = True
        self.code = -9

    def wait(self, timeout: float | None = None) -> int:
        return self.code if self.code is not None else 0


def make(names=("a",), policy=None, ready=lambda name, proc: False):
    clock = FakeClock()
    spawned: dict[str, list[FakeProcess]] = {}

    def spawn(name: str) -> FakeProcess:
        proc = FakeProcess()
        spawned.setdefault(name, []).append(proc)
        return proc

    sup = Supervisor(list(names), spawn, ready, policy or RestartPolicy(), clock=clock)
    return sup, clock, spawned


def test_backoff_doubles_and_is_capped():
    policy = RestartPolicy(base_delay=0.5, max_delay=4.0)
    assert [policy.delay(n) for n in range(0, 7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_service_is_running_only_once_it_reports_ready():
    ready = set()
    sup, clock, spawned = make(ready=lambda name, proc: name in ready)
    sup.start_all()
    sup.tick()
    assert sup.states() == {"a": STARTING}
    ready.add("a")
    assert sup.tick() is True
    assert sup.states() == {"a": RUNNING}
    assert sup.settled()


def test_crashed_service_restarts_after_its_backoff_delay():
    sup, clock, spawned = make(policy=RestartPolicy(base_delay=1.0, max_delay=30, max_crashes=5))
    sup.start_all()
    spawned["a"][0].code = 1
    sup.tick()
    assert sup.states() == {"a": RESTARTING}
    clock.now += 0.9
    sup.tick()
    assert len(spawned["a"]) == 1, "restarted before its backoff delay"
    clock.now += 0.2
    sup.tick()
    assert len(spawned["a"]) == 2 and sup.states() == {"a": STARTING}
    # second crash right away: the delay doubles
    spawned["a"][1].code = 1
    sup.tick()
    clock.now += 1.5
    sup.tick()
    assert len(spawned["a"]) == 2
    clock.now += 0.6
    sup.tick()
    assert len(spawned["a"]) == 3
    assert sup.slots["a"].restarts == 2


def test_repeated_crashes_within_the_window_mark_the_service_failed():
    sup, clock, spawned = make(
        policy=RestartPolicy(base_delay=0.1, max_delay=1, max_crashes=5, window=60)
    )
    sup.start_all()
    for _ in range(5):
        spawned["a"][-1].code = 2
        sup.tick()
        clock.now += 2
        sup.tick()
    assert sup.states() == {"a": FAILED}
    assert len(spawned["a"]) == 5, "a failed service must not be started again"
    assert "crashed 5 times" in sup.slots["a"].reason
    clock.now += 1000
    sup.tick()
    assert len(spawned["a"]) == 5 and sup.states() == {"a": FAILED}


def test_crashes_outside_the_window_do_not_accumulate():
    sup, clock, spawned = make(
        policy=RestartPolicy(base_delay=0.1, max_delay=1, max_crashes=3, window=10)
    )
    sup.start_all()
    for _ in range(6):
        spawned["a"][-1].code = 1
        sup.tick()
        clock.now += 20  # long, healthy runs between crashes
        sup.tick()
    assert sup.states() == {"a": STARTING}
    assert len(spawned["a"]) == 7


def test_config_exit_code_fails_at_once_without_restart():
    sup, clock, spawned = make(names=("a", "b"))
    sup.start_all()
    spawned["a"][0].code = EXIT_CONFIG
    sup.tick()
    clock.now += 100
    sup.tick()
    assert sup.states()["a"] == FAILED and len(spawned["a"]) == 1
    assert sup.states()["b"] == STARTING


def test_stop_all_terminates_live_processes_and_keeps_failed_state():
    sup, clock, spawned = make(names=("a", "b"))
    sup.start_all()
    spawned["b"][0].code = EXIT_CONFIG
    sup.tick()
    sup.stop_all(timeout=1)
    assert spawned["a"][0].terminated
    assert sup.states() == {"a": STOPPED, "b": FAILED}


def test_real_crashing_child_is_restarted_then_failed():
    def spawn(name):
        return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])

    sup = Supervisor(
        ["crashy"],
        spawn,
        lambda n, p: False,
        RestartPolicy(base_delay=0.01, max_delay=0.05, max_crashes=3, window=30),
    )
    sup.start_all()
    deadline = time.monotonic() + 20
    while sup.states()["crashy"] != FAILED and time.monotonic() < deadline:
        sup.tick()
        time.sleep(0.01)
    slot = sup.slots["crashy"]
    assert slot.state == FAILED
    assert slot.restarts == 2 and slot.last_exit == 3


class StubbornProcess(FakeProcess):
    """Ignores SIGTERM: only SIGKILL ends it (a consumer stuck on a dead broker)."""

    def terminate(self) -> None:
        self.terminated = True

    def wait(self, timeout: float | None = None) -> int:
        if self.code is None:
            raise subprocess.TimeoutExpired("stubborn", timeout or 0)
        return self.code


def test_broker_loss_stops_every_service_before_the_broker_is_replaced():
    ready = {"a", "b", "c"}
    sup, clock, spawned = make(names=("a", "b", "c"), ready=lambda name, proc: name in ready)
    sup.start_all()
    sup.tick()
    first = {name: procs[0] for name, procs in spawned.items()}
    seen_during_action = {}

    def replace_broker() -> None:
        seen_during_action.update(
            {name: (proc.poll(), len(spawned[name])) for name, proc in first.items()}
        )

    sup.restart_all_around(replace_broker, grace=1)
    # while the new broker came up, no old service was alive and no new one was started
    assert all(code is not None and count == 1 for code, count in seen_during_action.values())
    assert all(proc.terminated for proc in first.values())
    # afterwards every service runs again as a new process, counted as a restart, not a crash
    assert {name: len(procs) for name, procs in spawned.items()} == {"a": 2, "b": 2, "c": 2}
    assert sup.states() == {"a": STARTING, "b": STARTING, "c": STARTING}
    assert all(slot.restarts == 1 and not slot.crashes for slot in sup.slots.values())
    sup.tick()
    assert sup.states() == {"a": RUNNING, "b": RUNNING, "c": RUNNING}


def test_broker_loss_kills_a_service_that_ignores_sigterm_after_the_grace():
    stubborn = StubbornProcess()
    sup = Supervisor(
        ["a"], lambda name: stubborn, lambda n, p: True, RestartPolicy(), clock=FakeClock()
    )
    sup.start_all()
    order = []
    sup.restart_all_around(lambda: order.append(("action", stubborn.killed)), grace=0.1)
    assert stubborn.terminated and stubborn.killed
    assert order == [("action", True)]


def test_broker_loss_leaves_failed_services_failed_and_restarts_even_if_the_broker_does_not():
    sup, clock, spawned = make(names=("a", "b"))
    sup.start_all()
    spawned["b"][0].code = EXIT_CONFIG
    sup.tick()
    assert sup.states()["b"] == FAILED

    def broken_broker() -> None:
        raise RuntimeError("port taken")

    with contextlib.suppress(RuntimeError):
        sup.restart_all_around(broken_broker, grace=1)
    assert len(spawned["a"]) == 2 and len(spawned["b"]) == 1
    assert sup.states() == {"a": STARTING, "b": FAILED}
