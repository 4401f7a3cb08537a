"""A monitor command against the stored monitors: applied, unchanged or refused (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.monitors import MonitorCommandV1
from services.anomaly.domain import DEFAULT_MONITOR
from services.anomaly.monitors import decide, monitor_of, spec_of


def cmd(action: str, name: str, monitor: dict | None = None) -> MonitorCommandV1:
    return MonitorCommandV1(
        command_id="c",
        action=action,
        name=name,
        monitor=monitor,
        actor="root",
        issued_at=datetime.now(UTC),
    )


def test_set_is_checked_against_the_registries_and_a_repeat_is_unchanged():
    current = {"services": spec_of(DEFAULT_MONITOR)}
    outcome, detail, spec = decide(
        current, cmd("set", "regions", {"dimensions": ["RegionId"], "top": 3})
    )
    assert (outcome, detail) == ("applied", None)
    assert monitor_of("regions", spec).top == 3
    assert decide(
        {**current, "regions": spec}, cmd("set", "regions", {"dimensions": ["RegionId"], "top": 3})
    )[0] == ("unchanged")
    outcome, detail, spec = decide(
        current, cmd("set", "x", {"dimensions": ["RegionId"], "detector": "nope"})
    )
    assert outcome == "refused" and "nope" in detail and spec is None
    outcome, detail, _ = decide(
        current, cmd("set", "x", {"dimensions": ["RegionId"], "params": {"bogus": 1}})
    )
    assert outcome == "refused" and "bogus" in detail
    assert decide(current, cmd("set", "x", {}))[0] == "refused"  # neither dimensions nor filters


def test_remove_refuses_the_last_monitor_and_ignores_an_unknown_one():
    one = {"services": spec_of(DEFAULT_MONITOR)}
    assert decide(one, cmd("remove", "services"))[0] == "refused"
    assert decide(one, cmd("remove", "nope"))[0] == "unchanged"
    two = {**one, "regions": {"dimensions": ["RegionId"]}}
    assert decide(two, cmd("remove", "regions")) == ("applied", None, None)
