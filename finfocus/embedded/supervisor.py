"""Supervision of the service processes: restart with exponential backoff, give up after
repeated crashes.

The logic is independent of how a process is made (`spawn`) and of the clock, so it is
tested with fake processes; `finfocus.embedded.stack` plugs in real `finfocus serve`
children.

States: `starting` (spawned, not ready yet), `running` (the process said it is ready),
`restarting` (crashed, waiting for its backoff delay), `failed` (crashed `max_crashes` times
within `window` seconds, or exited with `EXIT_CONFIG`: it will not be started again) and
`stopped`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from finfocus.embedded.state import FAILED, RESTARTING, RUNNING, STARTING, STOPPED

logger = logging.getLogger(__name__)

#: exit status of `finfocus serve` when the service cannot run at all (e.g. not installed);
#: restarting would not help, so the supervisor marks it failed at once (sysexits EX_CONFIG)
EXIT_CONFIG = 78


class Child(Protocol):
    """What the supervisor needs of a process (subprocess.Popen fits)."""

    pid: int

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff `base_delay * 2**(n-1)` capped at `max_delay` after the n-th recent crash;
    `max_crashes` crashes within `window` seconds mark the service failed."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_crashes: int = 5
    window: float = 120.0

    def delay(self, recent_crashes: int) -> float:
        """Seconds to wait before the next start after `recent_crashes` crashes."""
        if recent_crashes <= 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (recent_crashes - 1))


@dataclass
class ServiceSlot:
    """One supervised service and its recent history."""

    name: str
    state: str = STOPPED
    process: Child | None = None
    crashes: deque[float] = field(default_factory=deque)
    restarts: int = 0
    next_start: float = 0.0
    last_exit: int | None = None
    reason: str | None = None

    def snapshot(self) -> dict:
        return {
            "state": self.state,
            "pid": self.process.pid
            if self.process is not None and self.state in (STARTING, RUNNING)
            else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "reason": self.reason,
        }


class Supervisor:
    """Keeps a set of named processes running.

    `spawn(name)` starts a process; `is_ready(name, process)` says whether a started process
    finished its start-up. Call `tick()` periodically; it returns True when any state changed.
    """

    def __init__(
        self,
        names: list[str] | tuple[str, ...],
        spawn: Callable[[str], Child],
        is_ready: Callable[[str, Child], bool],
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_spawned: Callable[[str, Child], None] | None = None,
    ) -> None:
        self.slots = {name: ServiceSlot(name) for name in names}
        self._spawn = spawn
        self._is_ready = is_ready
        self.policy = policy or RestartPolicy()
        self._clock = clock
        self._on_spawned = on_spawned

    def start_all(self) -> None:
        for slot in self.slots.values():
            self._start(slot)

    def _start(self, slot: ServiceSlot) -> None:
        try:
            slot.process = self._spawn(slot.name)
        except OSError as exc:  # cannot even exec: count it as a crash
            slot.process = None
            slot.reason = f"cannot start: {exc}"
            self._crashed(slot, None)
            return
        slot.state = STARTING
        if self._on_spawned:
            self._on_spawned(slot.name, slot.process)

    def _crashed(self, slot: ServiceSlot, code: int | None) -> None:
        now = self._clock()
        slot.last_exit = code
        slot.crashes.append(now)
        while slot.crashes and now - slot.crashes[0] > self.policy.window:
            slot.crashes.popleft()
        if code == EXIT_CONFIG:
            slot.state = FAILED
            slot.reason = slot.reason or "the service cannot run (see its log)"
        elif len(slot.crashes) >= self.policy.max_crashes:
            slot.state = FAILED
            slot.reason = f"crashed {len(slot.crashes)} times within {self.policy.window:.0f}s (last exit {code})"
        else:
            slot.state = RESTARTING
            slot.next_start = now + self.policy.delay(len(slot.crashes))
            slot.reason = f"exited with {code}; restarting"
        log = logger.error if slot.state == FAILED else logger.warning
        log(f"service {slot.name} exited with {code}: {slot.state}")

    def tick(self) -> bool:
        """Advance every slot one step; True when a state changed."""
        changed = False
        for slot in self.slots.values():
            before = (slot.state, slot.process.pid if slot.process else None)
            if slot.state in (STARTING, RUNNING) and slot.process is not None:
                code = slot.process.poll()
                if code is not None:
                    self._crashed(slot, code)
                elif slot.state == STARTING and self._is_ready(slot.name, slot.process):
                    slot.state = RUNNING
                    slot.reason = None
            elif slot.state == RESTARTING and self._clock() >= slot.next_start:
                slot.restarts += 1
                self._start(slot)
            changed |= before != (slot.state, slot.process.pid if slot.process else None)
        return changed

    def snapshot(self) -> dict[str, dict]:
        return {name: slot.snapshot() for name, slot in self.slots.items()}

    def states(self) -> dict[str, str]:
        return {name: slot.state for name, slot in self.slots.items()}

    def settled(self) -> bool:
        """Every service is running or failed (nothing is still on its way)."""
        return all(slot.state in (RUNNING, FAILED) for slot in self.slots.values())

    def restart_all_around(self, action: Callable[[], None], grace: float = 3.0) -> None:
        """Stop every service (SIGTERM, SIGKILL after `grace`), run `action`, start them again.

        For a dependency that lost its state (the memory-only broker): no service may talk to
        the new one with what it remembers of the old one (committed offsets), so all of them
        are gone before `action` replaces it, and all start fresh afterwards. These stops are
        not crashes: the crash history and backoff stay as they were; failed services stay
        failed.
        """
        self.stop_all(timeout=grace)
        try:
            action()
        finally:
            for slot in self.slots.values():
                if slot.state == FAILED:
                    continue
                slot.restarts += 1
                self._start(slot)

    def add(self, name: str) -> ServiceSlot:
        """Supervise one more process (another instance of a service) and start it now."""
        if name in self.slots:
            return self.slots[name]
        slot = self.slots[name] = ServiceSlot(name)
        self._start(slot)
        return slot

    def remove(self, name: str, timeout: float = 20.0) -> None:
        """Stop one process (SIGTERM, SIGKILL after `timeout`) and forget it: an instance
        scaled away leaves its consumer group cleanly, its partitions go to the others."""
        slot = self.slots.pop(name, None)
        if slot is None or slot.process is None or slot.process.poll() is not None:
            return
        try:
            slot.process.terminate()
            slot.process.wait(timeout)
        except OSError:
            pass
        except Exception:  # noqa: BLE001 - TimeoutExpired from subprocess or a fake
            slot.process.kill()
            slot.process.wait(5)

    def stop_all(self, timeout: float = 20.0) -> None:
        """Terminate every live process, then kill what has not exited after `timeout`."""
        live = [
            s.process
            for s in self.slots.values()
            if s.process is not None and s.process.poll() is None
        ]
        for process in live:
            with contextlib.suppress(OSError):
                process.terminate()
        deadline = self._clock() + timeout
        for process in live:
            remaining = max(0.1, deadline - self._clock())
            try:
                process.wait(remaining)
            except Exception:  # noqa: BLE001 - TimeoutExpired from subprocess or a fake
                process.kill()
                process.wait(5)
        for slot in self.slots.values():
            if slot.state != FAILED:
                slot.state = STOPPED
