"""What `finfocus status` reads from the services' health files: consumer positions, lag,
errors, and whether a service is really working or only alive.

Each service process writes `FINFOCUS_HOME/run/health/<service>-<pid>.json` every ~2 s:

```
{"service", "pid", "updated_at", "state": "running"|"degraded", "reason",
 "consumers": [{"group", "topic", "partition", "committed", "log_end", "lag",
                "last_error", "last_error_at", "retrying", "stalled"}]}
```

A process that is alive is not enough: a consumer that stopped on a failing partition, or
keeps retrying, loses no data but stores nothing either. Such a service is reported
`degraded` with the reason, as is a live process whose health file went stale (it stopped
reporting, so nothing it says can be trusted).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finfocus.embedded.state import RUNNING

#: a health file older than this, of a live process, marks the service degraded
STALE_AFTER = 15.0
DEGRADED = "degraded"
CONSUMER_FIELDS = (
    "group",
    "topic",
    "partition",
    "committed",
    "log_end",
    "lag",
    "last_error",
    "last_error_at",
    "retrying",
    "stalled",
)


def service_of(name: str) -> str:
    """The service an instance name belongs to: `pricing-2` -> `pricing` (the first instance
    of a service is named after it; `finfocus up --replicas`, docs/operations.md)."""
    base, _, index = name.rpartition("-")
    return base if base and index.isdigit() else name


def instance_name(service: str, index: int) -> str:
    """Name of the `index`-th instance of `service` (1: the service's own name)."""
    return service if index == 1 else f"{service}-{index}"


def health_dir(home: Path) -> Path:
    return home / "run" / "health"


def health_file(home: Path, service: str, pid: int) -> Path:
    return health_dir(home) / f"{service}-{pid}.json"


def _timestamp(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO 8601 string (either is accepted from the writer)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return moment.timestamp()
    return None


def read_health(home: Path, service: str, pid: int) -> dict[str, Any] | None:
    """The health report of process `pid` of `service`, or None when it wrote none (yet)."""
    try:
        data = json.loads(health_file(home, service, pid).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _consumer_problem(consumer: dict[str, Any]) -> str | None:
    where = f"{consumer.get('group')} {consumer.get('topic')}[{consumer.get('partition')}]"
    error = consumer.get("last_error")
    if consumer.get("stalled"):
        return f"consumer {where} stalled at offset {consumer.get('committed')}" + (
            f": {error}" if error else ""
        )
    if consumer.get("retrying"):
        return f"consumer {where} retrying" + (f": {error}" if error else "")
    return None


def assess(
    service: str,
    state: str,
    pid: int | None,
    process_alive: bool,
    report: dict[str, Any] | None,
    now: float,
) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(state to show, reasons, consumer rows) for one service.

    Only a `running` service can become `degraded`; the supervisor's other states
    (starting, restarting, failed, stopped) already say more than a health file could.
    """
    consumers = []
    for raw in (report or {}).get("consumers") or []:
        if isinstance(raw, dict):
            consumers.append({"service": service, **{k: raw.get(k) for k in CONSUMER_FIELDS}})
    if state != RUNNING or pid is None or report is None:
        return state, [], consumers
    reasons = []
    updated = _timestamp(report.get("updated_at"))
    if process_alive and (updated is None or now - updated > STALE_AFTER):
        age = "never" if updated is None else f"{now - updated:.0f}s ago"
        reasons.append(f"health report is stale (last update {age})")
    if report.get("state") == DEGRADED:
        reasons.append(str(report.get("reason") or "the service reports itself degraded"))
    reasons += [p for c in consumers if (p := _consumer_problem(c))]
    return (DEGRADED if reasons else state), reasons, consumers


def service_health(
    home: Path, services: dict[str, dict[str, Any]], now: float | None = None
) -> dict[str, Any]:
    """Shown states, degraded reasons and consumer rows of every service in the state file."""
    from finfocus.embedded.state import ProcessRef

    now = time.time() if now is None else now
    shown: dict[str, str] = {}
    reasons: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    metrics: dict[str, str] = {}
    for name, entry in services.items():
        entry = entry or {}
        state = entry.get("state", "stopped")
        pid = entry.get("pid")
        if not pid:
            alive = False
        elif entry.get("create_time"):
            alive = ProcessRef(int(pid), float(entry["create_time"])).alive()
        else:
            alive = ProcessRef.of(int(pid)) is not None
        report = read_health(home, entry.get("service") or service_of(name), pid) if pid else None
        if report and isinstance(report.get("metrics_url"), str):
            metrics[name] = report["metrics_url"]
        shown[name], why, consumers = assess(name, state, pid, alive, report, now)
        for consumer in consumers:  # which instance of the service holds the partition
            consumer.update(service=service_of(name), instance=name, pid=pid)
        if why:
            reasons[name] = "; ".join(why)
        rows += consumers
    return {"services": shown, "degraded_reasons": reasons, "consumers": rows, "metrics": metrics}


def quiescent_moment(reports: dict[str, dict[str, Any] | None]) -> str | None:
    """The moment every consumer group of every service had consumed everything (lag 0 on
    every partition), from one health report per running service; None when any service has
    no report yet or any consumer lags.

    The earliest `updated_at` of the reports: each was true when written, and they are
    written a moment apart, so only the earliest is certain for all. After a broker loss,
    what was stored after this moment may be missing downstream (the stack passes it to the
    services as FINFOCUS_BROKER_RECOVER_SINCE)."""
    moments: list[tuple[float, str]] = []
    for report in reports.values():
        if report is None:
            return None
        for consumer in report.get("consumers") or []:
            if not isinstance(consumer, dict) or consumer.get("lag") != 0:
                return None
        at = report.get("updated_at")
        seconds = _timestamp(at)
        if seconds is None:
            return None
        moments.append(
            (
                seconds,
                at if isinstance(at, str) else datetime.fromtimestamp(seconds, UTC).isoformat(),
            )
        )
    return min(moments)[1] if moments else None
