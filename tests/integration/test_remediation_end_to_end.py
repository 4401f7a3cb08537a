"""Issue 6's end-to-end check on the real broker, PostgreSQL and a moto server, through the CLI:
a cost spike on an EC2 instance -> anomaly -> playbook issues stop-instance requiring approval
-> `finfocus remediation approve` -> instance stopped in moto, audit row -> later billing drops
-> realised saving reported by `finfocus savings report`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from finfocus.db import reader
from schemas.anomaly import RootCauseV1
from schemas.topics import Topics
from services.remediation.app import build_app
from services.remediation.config import RemediationSettings
from services.remediation.playbooks import PACKAGED_DIR
from tests.fixtures.remediation import support
from tests.fixtures.remediation.support import (
    anomaly,
    cli,
    eventually,
    instance_state,
    priced,
    publish,
    publish_signed,
    run_instance,
    running,
)

pytestmark = pytest.mark.integration

# fixtures: a moto server (per module) and boto3's configuration pointing at it
moto_endpoint = support.moto_endpoint
aws = support.aws


async def view(settings, sql: str, *args):
    async with reader(settings.database) as conn:
        return await conn.fetch(sql, *args)


async def test_cost_spike_to_approved_stop_to_realised_saving(settings, aws, tmp_path):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "stop-spiking-instances.yaml").write_text(
        (PACKAGED_DIR / "stop-spiking-instances.yaml")
        .read_text()
        .replace("enabled: false", "enabled: true")
    )
    config = RemediationSettings(
        **settings.model_dump(),
        remediation_playbooks_dir=playbooks,
        remediation_poll_seconds=0.3,
        remediation_analysis_seconds=0.3,
    )
    iid = run_instance(instance_type="m5.large")
    today = datetime.now(UTC).date()
    baseline = [priced(iid, today - timedelta(days=d), "2.30") for d in range(8, 1, -1)]
    spike = priced(iid, today - timedelta(days=1), "55.20")

    async with running(build_app(config)):
        await publish(
            settings.kafka,
            Topics.PRICED_RESOURCES,
            [r.model_dump_json().encode() for r in [*baseline, spike]],
        )
        await eventually(
            lambda: view(
                settings,
                "SELECT 1 FROM remediation.v_resource_daily_cost WHERE usage_date = $1",
                today - timedelta(days=1),
            )
        )
        start = datetime.combine(today - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        event = anomaly(
            "anom-e2e",
            window_start=start,
            window_end=start + timedelta(days=1),
            actual_cost=Decimal("55.20"),
            expected_cost=Decimal("2.30"),
            impact=Decimal("52.90"),
            impact_pct=Decimal("2300"),
            severity="critical",
            root_causes=[RootCauseV1(dimension={"ResourceId": iid}, contribution=Decimal("52.90"))],
        )
        await publish_signed(settings, Topics.ANOMALIES, [event.model_dump_json().encode()])

        pending = await eventually(
            lambda: view(
                settings,
                "SELECT * FROM remediation.v_actions WHERE action = 'stop-instance' "
                "AND status = 'pending-approval'",
            )
        )
        command_id = pending[0]["command_id"]
        assert pending[0]["resource_id"] == iid
        assert pending[0]["expected_monthly_savings"] == Decimal("1679.00")  # 55.20 x 365/12
        assert instance_state(iid)[0] == "running"

        code, out, err = await cli(
            settings, "remediation", "list", "--status", "pending-approval", "--output", "json"
        )
        assert code == 0, err
        listed = json.loads(out)["commands"]
        assert [c["command_id"] for c in listed] == [command_id]
        assert listed[0]["requires_approval"] is True and listed[0]["status"] == "pending-approval"

        code, out, err = await cli(
            settings, "remediation", "approve", command_id, "--reason", "confirmed", "--wait", "30"
        )
        assert code == 0, out + err
        assert "status: executed" in out
        assert instance_state(iid)[0] == "stopped"
        audit = await view(
            settings,
            "SELECT event, actor, state_before, state_after FROM remediation.v_audit "
            "WHERE command_id = $1 ORDER BY audit_id",
            command_id,
        )
        assert [a["event"] for a in audit] == [
            "issued",
            "approval-requested",
            "approved",
            "intent",
            "step",
            "executed",
        ]
        assert audit[2]["actor"].startswith("cli")
        assert (
            audit[-1]["state_before"]["state"] == "running"
            and audit[-1]["state_after"]["state"] == "stopped"
        )

        # after the stop the instance bills a last 0.05, then nothing; other resources keep billing
        after = [
            priced(iid, today + timedelta(days=1), "0.05"),
            priced("vol-0other", today + timedelta(days=2), "0.40", resource_type="gp3"),
        ]
        await publish(
            settings.kafka, Topics.PRICED_RESOURCES, [r.model_dump_json().encode() for r in after]
        )
        measured = await eventually(
            lambda: view(
                settings,
                "SELECT * FROM remediation.v_savings WHERE command_id = $1 AND days_after = 2",
                command_id,
            )
        )
        before_mean = (Decimal("2.30") * 6 + Decimal("55.20")) / 7
        expected_realised = (
            (before_mean - Decimal("0.05") / 2) * (Decimal(365) / Decimal(12))
        ).quantize(Decimal("0.01"))
        assert measured[0]["realised_monthly"] == expected_realised

        code, out, err = await cli(settings, "savings", "report", "--output", "json")
        assert code == 0, err
        report = json.loads(out)
        [group] = [g for g in report["groups"] if g["group"]["action"] == "stop-instance"]
        assert group["group"] == {
            "playbook": "stop-spiking-instances",
            "account": "111122223333",
            "action": "stop-instance",
        }
        assert Decimal(group["realisedMonthly"]) == expected_realised
        assert Decimal(group["expectedMonthly"]) == Decimal("1679.00")
