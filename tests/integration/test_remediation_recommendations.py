"""Recommendations from billing data and imported utilisation, their playbooks, dismissal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from finfocus.db import reader
from schemas.remediation import RecommendationV1
from schemas.topics import Topics
from services.remediation.app import build_app
from services.remediation.config import RemediationSettings
from tests.fixtures.remediation import support
from tests.fixtures.remediation.support import (
    cli,
    ec2_client,
    eventually,
    priced,
    publish,
    read_topic,
    running,
    values,
)

pytestmark = pytest.mark.integration

# fixtures: a moto server (per module) and boto3's configuration pointing at it
moto_endpoint = support.moto_endpoint
aws = support.aws

RELEASE_PLAYBOOK = """
name: release-idle-now
trigger: {recommendation: {types: [idle-address]}}
resources: {types: [address]}
actions: [{action: release-address}]
mode: dry-run
"""


async def recs(settings):
    async with reader(settings.database) as conn:
        return {
            r["type"]: dict(r)
            for r in await conn.fetch("SELECT * FROM remediation.v_recommendations")
        }


async def test_idle_address_and_idle_instance_are_recommended_and_playbooks_pick_them_up(
    settings, aws, tmp_path
):
    alloc = ec2_client().allocate_address(Domain="vpc")["AllocationId"]
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "release.yaml").write_text(RELEASE_PLAYBOOK)
    config = RemediationSettings(
        **settings.model_dump(),
        remediation_playbooks_dir=playbooks,
        remediation_poll_seconds=0.3,
        remediation_analysis_seconds=0.3,
    )
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(1, 15)]
    lines = [
        priced(
            alloc,
            d,
            "0.12",
            service="Amazon Elastic Compute Cloud",
            resource_type=None,
            description="$0.005 per Elastic IP address not attached to a running instance (IdleAddress)",
        )
        for d in days
    ]
    lines += [priced("i-0idle", d, "2.304") for d in days]
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "resource_id,date,cpu_avg_pct,cpu_p995_pct,network_mb\n"
        + "".join(
            f"i-0idle,{d.isoformat()},{'2' if n < 5 else '40'},{'5' if n < 5 else '60'},{'1' if n < 5 else '800'}\n"
            for n, d in enumerate(days)
        )
        + "i-0idle,not-a-date,1,1,1\n"
    )

    async with running(build_app(config)):
        await publish(
            settings.kafka, Topics.PRICED_RESOURCES, [r.model_dump_json().encode() for r in lines]
        )
        code, out, err = await cli(settings, "metrics", "import", str(csv))
        assert code == 1 and "published 14, rejected 1" in out and "line 16" in err
        found = await eventually(lambda: _both(settings))
        assert found["idle-address"]["resource_id"] == alloc
        assert found["idle-address"]["estimated_monthly_savings"] == Decimal("3.65")
        assert found["idle-instance"]["action"] == "stop-instance"
        assert found["idle-instance"]["estimated_monthly_savings"] == Decimal(
            "70.08"
        )  # 2.304 x 365/12

        published = [
            RecommendationV1.model_validate(v)
            for v in values(await read_topic(settings.kafka, Topics.RECOMMENDATIONS, want=2))
        ]
        assert {r.type for r in published} >= {"idle-address", "idle-instance"}

        # the playbook turns the idle address into a dry-run release that changes nothing
        async def dry_run():
            async with reader(settings.database) as conn:
                return await conn.fetchrow(
                    "SELECT * FROM remediation.v_actions WHERE action = 'release-address' "
                    "AND status = 'dry-run'"
                )

        command = await eventually(dry_run)
        assert command["recommendation_id"] == found["idle-address"]["recommendation_id"]
        assert ec2_client().describe_addresses(AllocationIds=[alloc])["Addresses"]

        code, out, err = await cli(settings, "recommendations", "list", "--output", "json")
        assert code == 0, err
        listed = json.loads(out)
        assert {r["type"] for r in listed["recommendations"]} >= {"idle-address", "idle-instance"}
        rec_id = found["idle-instance"]["recommendation_id"]
        code, out, err = await cli(
            settings, "recommendations", "dismiss", rec_id, "--reason", "batch host"
        )
        assert code == 0, err
        dismissed = (await recs(settings))["idle-instance"]
        assert (dismissed["state"], dismissed["state_reason"]) == ("dismissed", "batch host")
        address = found["idle-address"]["recommendation_id"]
        code, out, err = await cli(
            settings,
            "recommendations",
            "snooze",
            address,
            "--until",
            "2099-01-01",
            "--reason",
            "after the migration",
        )
        assert code == 0, err
        snoozed = (await recs(settings))["idle-address"]
        assert (snoozed["state"], snoozed["state_reason"]) == ("snoozed", "after the migration")


async def _both(settings):
    found = await recs(settings)
    return found if {"idle-address", "idle-instance"} <= set(found) else None


async def test_restated_scope_replaces_older_cost_lines(settings):
    config = RemediationSettings(**settings.model_dump(), remediation_executor=False)
    day = datetime.now(UTC).date() - timedelta(days=3)
    v1 = [
        priced(
            "i-r", day, "10.00", scope="AWS:999988887777:2026-11", scope_version=1, record_id="r1"
        )
    ]
    v2 = [
        priced(
            "i-r", day, "4.00", scope="AWS:999988887777:2026-11", scope_version=2, record_id="r2"
        )
    ]

    async def cost():
        async with reader(settings.database) as conn:
            return await conn.fetchval(
                "SELECT sum(cost) FROM remediation.v_resource_daily_cost WHERE resource_id = 'i-r'"
            )

    async with running(build_app(config)):
        await publish(
            settings.kafka, Topics.PRICED_RESOURCES, [r.model_dump_json().encode() for r in v1]
        )
        assert await eventually(lambda: _equals(cost, Decimal("10.00")))
        await publish(
            settings.kafka, Topics.PRICED_RESOURCES, [r.model_dump_json().encode() for r in v2]
        )
        assert await eventually(lambda: _equals(cost, Decimal("4.00")))
        # a late redelivery of version 1 changes nothing
        await publish(
            settings.kafka, Topics.PRICED_RESOURCES, [r.model_dump_json().encode() for r in v1 + v2]
        )
        await publish(
            settings.kafka,
            Topics.PRICED_RESOURCES,
            [priced("i-marker", day, "1.00").model_dump_json().encode()],
        )

        async def marker():
            async with reader(settings.database) as conn:
                return await conn.fetchval(
                    "SELECT count(*) FROM remediation.v_resource_daily_cost "
                    "WHERE resource_id = 'i-marker'"
                )

        await eventually(marker)
        assert await cost() == Decimal("4.00")
        # the superseded version is deleted, not only hidden by the view
        conn = await asyncpg.connect(settings.database_url)
        try:
            kept = await conn.fetch(
                "SELECT record_id, billing_scope_version FROM remediation.cost_lines "
                "WHERE billing_scope = 'AWS:999988887777:2026-11'"
            )
        finally:
            await conn.close()
        assert [tuple(r) for r in kept] == [("r2", 2)]


async def _equals(probe, expected):
    return (await probe()) == expected
