"""A playbook switch against the loaded playbooks (pure): applied, unchanged or refused; the
planner's view of a switched playbook."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.playbooks import PlaybookCommandV1
from services.remediation.playbook_commands import PlaybookSwitches, catalog_row, decide
from services.remediation.playbooks import PACKAGED_DIR, load_playbooks


def cmd(action: str, name: str) -> PlaybookCommandV1:
    return PlaybookCommandV1(
        command_id="c", action=action, name=name, actor="root", issued_at=datetime.now(UTC)
    )


def test_switches_decide_against_the_file_flag_and_the_stored_switch():
    loaded, errors = load_playbooks(PACKAGED_DIR)
    assert loaded and not errors
    p = loaded[0]
    off, on = ("disable", "enable") if p.enabled else ("enable", "disable")
    assert decide(loaded, {}, cmd(off, p.name)) == ("applied", None)
    assert decide(loaded, {}, cmd(on, p.name))[0] == "unchanged"
    assert decide(loaded, {p.name: not p.enabled}, cmd(off, p.name))[0] == "unchanged"
    outcome, detail = decide(loaded, {}, cmd("enable", "nope"))
    assert outcome == "refused" and "nope" in detail


def test_apply_overrides_only_switched_playbooks():
    loaded, _ = load_playbooks(PACKAGED_DIR)
    switches = PlaybookSwitches(lambda: loaded)
    switches._switches = {loaded[0].name: not loaded[0].enabled}
    applied = switches.apply(loaded)
    assert applied[0].enabled is (not loaded[0].enabled)
    assert [p.enabled for p in applied[1:]] == [p.enabled for p in loaded[1:]]
    assert loaded[0].enabled is not applied[0].enabled  # the loaded playbook is not mutated
    name, mode, enabled, trigger, actions = catalog_row(loaded[0])
    assert (
        name == loaded[0].name
        and actions
        and trigger.split(":")[0]
        in (
            "anomaly",
            "recommendation",
        )
    )
