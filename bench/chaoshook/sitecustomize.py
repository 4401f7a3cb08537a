"""Fault hook for bench/chaos.py and tests/integration/test_chaos.py.

Loaded as `sitecustomize` (bench/chaoshook on PYTHONPATH) by every Python process the embedded
stack starts, it does nothing unless `FINFOCUS_CHAOS_ARM_FILE` names a file. While that file
holds `{"group": ..., "topic": ..., "offsets": N, "marker": PATH}`, the process that consumes
as consumer group <group> kills itself with SIGKILL right after the first offset commit that
moved the offsets it committed on <topic> (summed over partitions) N past where they stood
when it was armed (its first commit after the file appeared): the moment a consumer that
commits ahead of its store loses what it had in flight, found deterministically instead of by
a race with a `kill` from outside. The marker file is written before the kill (the committed
offsets, the pid), so the restarted process does not fire again. The bench writes the arm
file (atomically) when it injects the fault, so one stack can take several such faults, one
after the other, each with its own marker (a process counts from the offsets it committed
itself: one that a previous fault restarted counts from 0, as on a fresh stack).

`FINFOCUS_CHAOS_AUTOCOMMIT_MS` shortens aiokafka's auto-commit interval (5 s) in the consumers
of the groups listed in `FINFOCUS_CHAOS_AUTOCOMMIT_GROUPS` (comma-separated), where auto-commit
is on: a consumer that lets the client commit what it was handed, ahead of its store, then
shows it on a few thousand rows instead of needing minutes of them. A consumer that commits
only after its transaction has auto-commit off and is not affected.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time


class _Arm:
    """The arm file, read again only when it changed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._spec: dict | None = None

    def spec(self) -> dict | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._spec = None, None
            return None
        key = (stat.st_mtime_ns, stat.st_ino)
        if key != self._seen:
            try:
                with open(self.path) as src:
                    self._spec = json.load(src)
            except (OSError, ValueError):
                return None  # being replaced: read it on the next commit
            self._seen = key
        return self._spec


def _install(arm: _Arm) -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    original = GroupCoordinator._do_commit_offsets
    #: offsets this process committed, per (group, topic) and partition
    committed: dict[tuple[str, str], dict[int, int]] = {}
    #: per arming (its marker), the sum of the offsets committed before it
    baselines: dict[str, int] = {}

    async def _do_commit_offsets(self, assignment, offsets):  # noqa: ANN001, ANN202
        result = await original(self, assignment, offsets)
        spec = arm.spec()
        if spec and self.group_id == spec["group"] and spec["marker"] not in baselines:
            before = committed.get((spec["group"], spec["topic"]), {})
            baselines[spec["marker"]] = sum(before.values())
        for tp, meta in offsets.items():
            committed.setdefault((self.group_id, tp.topic), {})[tp.partition] = meta.offset
        # blocking file calls on purpose: the marker must be on disk before the kill
        if not spec or self.group_id != spec["group"] or os.path.exists(spec["marker"]):  # noqa: ASYNC240
            return result
        mine = committed.get((spec["group"], spec["topic"]), {})
        if sum(mine.values()) - baselines[spec["marker"]] >= int(spec["offsets"]):
            with open(spec["marker"], "w") as out:  # noqa: ASYNC230
                json.dump(
                    {
                        "pid": os.getpid(),
                        "group": spec["group"],
                        "topic": spec["topic"],
                        "committed": mine,
                        "time": time.time(),
                    },
                    out,
                )
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    GroupCoordinator._do_commit_offsets = _do_commit_offsets

    interval = os.environ.get("FINFOCUS_CHAOS_AUTOCOMMIT_MS")
    groups = {g for g in os.environ.get("FINFOCUS_CHAOS_AUTOCOMMIT_GROUPS", "").split(",") if g}
    if interval and groups:
        original_init = GroupCoordinator.__init__

        def __init__(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202, N807
            original_init(self, *args, **kwargs)
            if getattr(self, "group_id", None) in groups:
                self._auto_commit_interval_ms = int(interval)
                self._next_autocommit_deadline = time.monotonic() + int(interval) / 1000

        GroupCoordinator.__init__ = __init__


_ARM_FILE = os.environ.get("FINFOCUS_CHAOS_ARM_FILE")
if _ARM_FILE:
    with contextlib.suppress(Exception):  # a process without aiokafka runs unhooked
        _install(_Arm(_ARM_FILE))
