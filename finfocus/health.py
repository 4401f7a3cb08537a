"""Consumer health as numbers: lag, the stall rule and a service's state (pure, no I/O).

The consume pipeline keeps one `PartitionHealth` per consumed partition; the runtime turns
them into the health file `finfocus status` reads. Kept free of I/O so the rules are tested
in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

#: a partition retrying a transient error for longer than this counts as stalled
STALL_AFTER_S = 120.0


@dataclass
class PartitionHealth:
    """What the pipeline knows of one partition of one consumer group."""

    group: str
    topic: str
    partition: int
    committed: int | None = None
    log_end: int | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    #: since when a transient error is being retried (None: not retrying)
    retrying_since: float | None = None
    #: the pipeline paused the partition after a handler kept failing
    paused: bool = False
    #: the broker could not say what was committed before this process (own commits only)
    committed_unknown: bool = False


def lag(committed: int | None, log_end: int | None) -> int | None:
    """Records in the log not yet committed; unknown without a log end. A committed offset
    beyond the log end (a restarted, empty broker) is no negative lag but zero."""
    if log_end is None:
        return None
    return max(0, log_end - (committed or 0))


def is_stalled(p: PartitionHealth, now: float, stall_after_s: float = STALL_AFTER_S) -> bool:
    """Paused by the pipeline, or retrying one error for longer than `stall_after_s`."""
    if p.paused:
        return True
    return p.retrying_since is not None and now - p.retrying_since >= stall_after_s


def service_state(parts: list[PartitionHealth], now: float) -> tuple[str, str | None]:
    """`running`, or `degraded` with the reason when a partition is stalled or retrying."""
    stalled = [p for p in parts if is_stalled(p, now)]
    retrying = [p for p in parts if p.retrying_since is not None and p not in stalled]
    if not stalled and not retrying:
        return "running", None
    reasons = [
        f"{p.topic}[{p.partition}] ({p.group}) stalled: {p.last_error or 'unknown error'}"
        for p in stalled
    ] + [
        f"{p.topic}[{p.partition}] ({p.group}) retrying: {p.last_error or 'unknown error'}"
        for p in retrying
    ]
    return "degraded", "; ".join(reasons)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def report(service: str, pid: int, parts: list[PartitionHealth], now: float) -> dict:
    """The health document of one service process (the file `finfocus status` reads)."""
    state, reason = service_state(parts, now)
    return {
        "service": service,
        "pid": pid,
        "updated_at": _iso(now),
        "state": state,
        "reason": reason,
        "consumers": [
            {
                "group": p.group,
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "log_end": p.log_end,
                "lag": lag(p.committed, p.log_end),
                "last_error": p.last_error,
                "last_error_at": _iso(p.last_error_at),
                "retrying": p.retrying_since is not None,
                "stalled": is_stalled(p, now),
            }
            for p in sorted(parts, key=lambda p: (p.group, p.topic, p.partition))
        ],
    }
