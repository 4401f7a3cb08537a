"""Guardrail verdicts (pure): each rule on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.remediation.guardrails import Policy, check, is_protected, policy_for
from services.remediation.playbooks import parse_playbook

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)  # a Monday


def verdict(
    policy=Policy(),
    tags=None,
    executed=0,
    expires=NOW + timedelta(hours=1),
    execute=True,
    rid="i-1",
):
    return check(
        resource_id=rid,
        execute=execute,
        expires_at=expires,
        now=NOW,
        policy=policy,
        tags=tags or {},
        executed_last_hour=executed,
    )


def test_clean_command_proceeds():
    assert verdict().outcome == "proceed"


def test_expired_command_expires_before_any_other_rule():
    v = verdict(expires=NOW - timedelta(seconds=1), tags={"finfocus:protect": "true"})
    assert (v.outcome, v.rule) == ("expire", "expiry")


def test_protect_tag_blocks_case_insensitively():
    assert verdict(tags={"finfocus:protect": "TRUE"}).rule == "protected-tag"
    assert verdict(tags={"finfocus:protect": "false"}).outcome == "proceed"


def test_deny_list_glob_blocks():
    v = verdict(Policy(deny=("i-1*",)))
    assert (v.outcome, v.rule) == ("block", "deny-list")


def test_allow_list_blocks_everything_else():
    assert verdict(Policy(allow=("i-9*",))).rule == "allow-list"
    assert verdict(Policy(allow=("i-1",))).outcome == "proceed"


def test_rate_limit_defers_execute_but_not_dry_run():
    v = verdict(Policy(rate_limit_per_hour=3), executed=3)
    assert (v.outcome, v.rule) == ("defer", "rate-limit")
    assert verdict(Policy(rate_limit_per_hour=3), executed=3, execute=False).outcome == "proceed"
    assert verdict(Policy(rate_limit_per_hour=3), executed=2).outcome == "proceed"


def test_schedule_window_defers_outside_hours():
    pb = parse_playbook("""
name: w
trigger: {anomaly: {}}
actions: [{action: notify}]
schedule: [{days: [sat, sun]}]
""")
    policy = policy_for(pb, global_protect_tag="finfocus:protect=true", default_rate_limit=10)
    assert verdict(policy).rule == "schedule"


def test_policy_keeps_global_protect_tag_beside_the_playbook_one():
    pb = parse_playbook("""
name: p
trigger: {anomaly: {}}
actions: [{action: notify}]
protect: {tag: "team:keep=yes"}
rate_limit: {per_account_per_hour: 2}
""")
    policy = policy_for(pb, global_protect_tag="finfocus:protect=true", default_rate_limit=10)
    assert is_protected({"finfocus:protect": "true"}, policy.protect_tags)
    assert is_protected({"team:keep": "yes"}, policy.protect_tags)
    assert policy.rate_limit_per_hour == 2
    assert policy_for(None, global_protect_tag="x=y", default_rate_limit=7).rate_limit_per_hour == 7
