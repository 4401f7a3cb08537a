"""Fault hook for bench/chaos.py and tests/integration/test_chaos.py.

Loaded as `sitecustomize` (bench/chaoshook on PYTHONPATH) by every Python process the embedded
stack starts, it does nothing unless `FINFOCUS_CHAOS_KILL_AFTER_COMMIT=<group>:<topic>:<offsets>`
is set. Then the process that consumes as consumer group <group> kills itself with SIGKILL right
after the first offset commit that brought the group's committed offsets on <topic> (summed over
partitions) to at least <offsets>: the moment a consumer that commits ahead of its store loses
what it had in flight, found deterministically instead of by a race with a `kill` from outside.
`FINFOCUS_CHAOS_MARKER` names a file written before the kill (the committed offsets, the pid),
so the restarted process does not fire again.

`FINFOCUS_CHAOS_AUTOCOMMIT_MS` shortens aiokafka's auto-commit interval (5 s) in the same
process, where auto-commit is on: a consumer that lets the client commit what it was handed,
ahead of its store, then shows it on a few thousand rows instead of needing minutes of them.
A consumer that commits only after its transaction has auto-commit off and is not affected.
"""

from __future__ import annotations

import json
import os
import signal
import time


def _install(spec: str, marker: str) -> None:
    group, topic, threshold = spec.rsplit(":", 2)
    limit = int(threshold)
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    original = GroupCoordinator._do_commit_offsets
    committed: dict[int, int] = {}

    async def _do_commit_offsets(self, assignment, offsets):  # noqa: ANN001, ANN202
        result = await original(self, assignment, offsets)
        if self.group_id != group or os.path.exists(marker):
            return result
        for tp, meta in offsets.items():
            if tp.topic == topic:
                committed[tp.partition] = meta.offset
        if sum(committed.values()) >= limit:
            with open(marker, "w") as out:
                json.dump(
                    {
                        "pid": os.getpid(),
                        "group": group,
                        "topic": topic,
                        "committed": committed,
                        "time": time.time(),
                    },
                    out,
                )
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    GroupCoordinator._do_commit_offsets = _do_commit_offsets

    interval = os.environ.get("FINFOCUS_CHAOS_AUTOCOMMIT_MS")
    if interval:
        original_init = GroupCoordinator.__init__

        def __init__(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202, N807
            original_init(self, *args, **kwargs)
            if getattr(self, "group_id", None) == group:
                self._auto_commit_interval_ms = int(interval)
                self._next_autocommit_deadline = time.monotonic() + int(interval) / 1000

        GroupCoordinator.__init__ = __init__


_SPEC = os.environ.get("FINFOCUS_CHAOS_KILL_AFTER_COMMIT")
_MARKER = os.environ.get("FINFOCUS_CHAOS_MARKER")
if _SPEC and _MARKER:
    try:
        _install(_SPEC, _MARKER)
    except Exception:  # noqa: BLE001 - a process without aiokafka (or a bad spec) runs unhooked
        pass
