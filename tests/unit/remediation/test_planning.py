"""Planning: anomalies to commands through playbooks (pure, no sockets)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

from schemas.anomaly import RootCauseV1
from services.remediation.domain import (
    Candidate,
    initial_status,
    monthly,
    plan_anomaly,
    rank_candidates,
)
from services.remediation.playbooks import parse_playbook
from tests.fixtures.remediation.support import anomaly

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)

STOP = """
name: stop-spikes
trigger: {anomaly: {min_severity: high, dimension: {ServiceName: "*Compute*"}}}
resources: {types: [instance], max_targets: 1}
actions: [{action: stop-instance}]
mode: execute
approval: {required: true, expires_after_hours: 2}
"""


def test_domain_modules_import_no_io_frameworks():
    code = (
        "import sys, services.remediation.domain, services.remediation.guardrails, "
        "services.remediation.playbooks, services.remediation.actions, services.remediation.analysis;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('faststream', 'asyncpg', 'opentelemetry', 'boto3')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_anomaly_without_matching_playbook_gives_a_dry_run_notify():
    [command] = plan_anomaly(anomaly("a1"), [], [], NOW)
    assert command.action == "notify" and command.mode.value == "dry-run"
    assert not command.requires_approval
    assert initial_status(command) == "approved"
    assert "850.0 %" in command.reason.text


def test_same_anomaly_planned_twice_gives_the_same_command_id():
    first = plan_anomaly(anomaly("a1"), [], [], NOW)[0]
    second = plan_anomaly(anomaly("a1"), [], [], datetime(2026, 11, 22, tzinfo=UTC))[0]
    assert first.command_id == second.command_id


def test_matching_playbook_targets_the_top_root_cause_instance_with_its_monthly_cost():
    event = anomaly(
        "a2",
        root_causes=[
            RootCauseV1(dimension={"ResourceId": "i-small"}, contribution=Decimal("5")),
            RootCauseV1(dimension={"ResourceId": "i-big"}, contribution=Decimal("80")),
        ],
    )
    known = [
        Candidate(
            "i-big", "AWS", "111122223333", "us-east-1", "m5.large", {}, Decimal("90"), "USD"
        ),
        Candidate(
            "i-small", "AWS", "111122223333", "us-east-1", "t3.micro", {}, Decimal("5"), "USD"
        ),
    ]
    notify, command = sorted(
        plan_anomaly(event, [parse_playbook(STOP)], known, NOW), key=lambda c: c.action
    )
    assert (notify.action, notify.mode.value) == ("notify", "dry-run")
    assert command.action == "stop-instance"
    assert command.target.resource_id == "i-big"
    assert command.target.region == "us-east-1"
    assert command.requires_approval and command.mode.value == "execute"
    assert initial_status(command) == "pending-approval"
    assert command.expected_monthly_savings == monthly(Decimal("90")) == Decimal("2737.50")
    assert (command.expires_at - command.issued_at).total_seconds() == 7200


def test_playbook_with_lower_severity_threshold_does_not_claim_low_anomalies():
    [command] = plan_anomaly(anomaly("a3", severity="low"), [parse_playbook(STOP)], [], NOW)
    assert command.action == "notify"


def test_resource_filter_tags_exclude_resources_without_them():
    pb = parse_playbook(STOP.replace("max_targets: 1", "max_targets: 1, tags: {env: dev}"))
    known = [Candidate("i-prod", "AWS", "1", "us-east-1", None, {"env": "prod"}, Decimal("50"))]
    assert [c.action for c in plan_anomaly(anomaly("a4"), [pb], known, NOW)] == ["notify"]


def test_rank_puts_dimension_resource_first():
    event = anomaly("a5", dimension={"ProviderName": "AWS", "ResourceId": "i-named"})
    ranked = rank_candidates(
        event,
        [
            Candidate("i-other", "AWS", daily_cost=Decimal("100")),
            Candidate("i-named", "AWS", daily_cost=Decimal("1")),
        ],
    )
    assert [c.resource_id for c in ranked] == ["i-named", "i-other"]


def test_resource_named_by_an_anomaly_but_never_billed_is_no_target():
    event = anomaly(
        "a6",
        root_causes=[
            RootCauseV1(
                dimension={"RegionId": "eu-west-1", "ResourceId": "i-new"},
                contribution=Decimal("9"),
            )
        ],
    )
    assert rank_candidates(event, []) == []
    forged = anomaly(
        "a6b",
        dimension={"ProviderName": "AWS", "ServiceName": "Compute", "ResourceId": "i-anything"},
    )
    planned = plan_anomaly(forged, [parse_playbook(STOP)], [], NOW)
    assert [c.action for c in planned] == ["notify"]


def test_a_playbook_that_fails_to_plan_silences_neither_the_others_nor_the_notify():
    broken = parse_playbook(STOP)
    # what an unbounded expiry did before validation refused it: planning raises OverflowError
    broken.approval.expires_after_hours = 1e30
    tagger = parse_playbook(
        STOP.replace("stop-spikes", "tag-spikes").replace(
            "action: stop-instance", "action: tag-resource, params: {tags: {seen: 'yes'}}"
        )
    )
    known = [Candidate("i-1", "AWS", "111122223333", "us-east-1", "m5.large", {}, Decimal("50"))]
    failures: list[str] = []
    planned = plan_anomaly(anomaly("a9"), [broken, tagger], known, NOW, failures)
    assert sorted(c.action for c in planned) == ["notify", "tag-resource"]
    assert len(failures) == 1 and failures[0].startswith("playbook stop-spikes: OverflowError")
