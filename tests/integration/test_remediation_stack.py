"""Issue 6's check on the embedded stack (`finfocus up`), all five services as processes, with
moto standing in for AWS: billing with a cost spike on an EC2 instance -> the anomaly service
raises an anomaly -> a playbook issues `stop-instance` requiring approval -> `finfocus
remediation approve` lets it run -> the instance is stopped in moto, the audit row exists ->
the instance's later billing drops -> `finfocus savings report` shows the realised saving."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from finfocus.db import reader
from schemas.ingest import BillingRecordV1
from services.remediation.playbooks import PACKAGED_DIR
from tests.fixtures.remediation import support
from tests.fixtures.remediation.support import (
    eventually,
    instance_state,
    run_instance,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(420)]

# fixtures: a moto server (per module) and boto3's configuration pointing at it
moto_endpoint = support.moto_endpoint
aws = support.aws
ACCOUNT = "210000000042"


def bill(
    resource_id: str, day, cost: str, service: str = "Amazon Elastic Compute Cloud"
) -> BillingRecordV1:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return BillingRecordV1(
        ProviderName="AWS",
        BillingAccountId="999900000001",
        SubAccountId=ACCOUNT,
        ChargePeriodStart=start,
        ChargePeriodEnd=start + timedelta(days=1),
        BillingCurrency="USD",
        ServiceName=service,
        ChargeCategory="Usage",
        BilledCost=Decimal(cost),
        ResourceId=resource_id,
        ResourceType="m5.large",
        RegionId="us-east-1",
        x_RecordId=f"{resource_id}|{day.isoformat()}",
    )


async def finfocus(env: dict, *args: str, timeout: float = 240) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "finfocus.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def produce(bootstrap: str, records: list[BillingRecordV1]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for r in records:
            await producer.send(
                "raw-billing", r.model_dump_json(exclude_none=True).encode(), key=r.partition_key()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def rows(url: str, sql: str, *args):
    async with reader(url) as conn:
        return await conn.fetch(sql, *args)


async def test_spike_on_the_embedded_stack_is_stopped_after_approval_and_the_saving_realised(
    aws, tmp_path, database_url
):
    home = tmp_path / "home"
    (home / "playbooks").mkdir(parents=True)
    (home / "playbooks" / "stop-spiking-instances.yaml").write_text(
        (PACKAGED_DIR / "stop-spiking-instances.yaml")
        .read_text()
        .replace("enabled: false", "enabled: true")
        .replace("min_severity: high", "min_severity: medium")
    )  # a 53 USD spike is of medium severity
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINFOCUS_")}
    # the embedded broker and services; PostgreSQL is the test server (a fresh database)
    env.update(
        FINFOCUS_HOME=str(home),
        FINFOCUS_DATABASE_URL=database_url,
        FINFOCUS_REMEDIATION_POLL_SECONDS="0.5",
        FINFOCUS_REMEDIATION_ANALYSIS_SECONDS="1",
        COLUMNS="200",
    )
    iid = run_instance()
    today = datetime.now(UTC).date()
    code, out, err = await finfocus(env, "up", "--detach")
    assert code == 0, out + err
    try:
        code, out, err = await finfocus(env, "status", "--output", "json")
        stack = json.loads(out)
        assert stack["services"]["remediation"] == "running"
        url = stack["database_url"]
        history = [bill(iid, today - timedelta(days=d), "2.30") for d in range(29, 1, -1)]
        history += [
            bill(
                "arn:aws:s3:::logs",
                today - timedelta(days=d),
                "1.00",
                "Amazon Simple Storage Service",
            )
            for d in range(29, -3, -1)
        ]
        await produce(
            stack["kafka_bootstrap"], [*history, bill(iid, today - timedelta(days=1), "55.20")]
        )

        try:
            pending = await eventually(
                lambda: rows(
                    url,
                    "SELECT * FROM remediation.v_actions WHERE action = 'stop-instance' "
                    "AND status = 'pending-approval'",
                ),
                timeout=90,
                interval=1,
            )
        except AssertionError:
            code, out, err = await finfocus(env, "anomalies", "list", "--output", "json")
            actions = await rows(
                url, "SELECT action, status, resource_id, result FROM remediation.v_actions"
            )
            raise AssertionError(
                f"no pending stop-instance; anomalies: {out[:3000]} actions: {actions}"
            ) from None
        command_id = pending[0]["command_id"]
        assert pending[0]["resource_id"] == iid and pending[0]["anomaly_id"]
        assert instance_state(iid)[0] == "running"

        code, out, err = await finfocus(env, "remediation", "approve", command_id, "--wait", "60")
        assert code == 0 and "status: executed" in out, out + err
        assert instance_state(iid)[0] == "stopped"
        audit = await rows(
            url,
            "SELECT event FROM remediation.v_audit WHERE command_id = $1 ORDER BY audit_id",
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

        # after the stop: one last partial day, then nothing, while the bucket keeps billing
        await produce(stack["kafka_bootstrap"], [bill(iid, today + timedelta(days=1), "0.05")])
        before = (Decimal("2.30") * 6 + Decimal("55.20")) / 7
        expected = ((before - Decimal("0.05") / 2) * (Decimal(365) / Decimal(12))).quantize(
            Decimal("0.01")
        )

        async def measured():
            found = await rows(
                url,
                "SELECT * FROM remediation.v_savings WHERE command_id = $1 AND days_after = 2 "
                "AND after_daily > 0",
                command_id,
            )
            return found

        saving = await eventually(measured, timeout=90, interval=1)
        assert saving[0]["realised_monthly"] == expected
        daily = await rows(
            url,
            "SELECT usage_date, cost FROM remediation.v_resource_daily_cost "
            "WHERE resource_id = $1 AND usage_date > $2",
            iid,
            today - timedelta(days=2),
        )
        assert [r["cost"] for r in sorted(daily, key=lambda r: r["usage_date"])] == [
            Decimal("55.20"),
            Decimal("0.05"),
        ]

        code, out, err = await finfocus(
            env, "savings", "report", "--by", "playbook,action", "--output", "json"
        )
        assert code == 0, err
        [group] = [g for g in json.loads(out)["groups"] if g["group"]["action"] == "stop-instance"]
        assert group["group"]["playbook"] == "stop-spiking-instances"
        assert Decimal(group["realisedMonthly"]) == expected
    finally:
        await finfocus(env, "down", timeout=120)
