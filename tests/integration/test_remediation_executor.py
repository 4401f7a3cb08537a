"""The executor against PostgreSQL and a moto server: guardrails, actions, approval, undo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finfocus.db import create_pool, migrate_url
from schemas.remediation import (
    RemediationCommandV1,
    RemediationReasonV1,
    RemediationTargetV1,
    derive_command_id,
)
from services.remediation import store
from services.remediation.cloud import implementations
from services.remediation.domain import initial_status
from services.remediation.executor import Executor
from services.remediation.guardrails import Policy
from tests.fixtures.remediation import support
from tests.fixtures.remediation.support import (
    AMI,
    ec2_client,
    instance_state,
    run_instance,
)

pytestmark = pytest.mark.integration

# fixtures: a moto server (per module) and boto3's configuration pointing at it
moto_endpoint = support.moto_endpoint
aws = support.aws
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "remediation" / "migrations"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def module_database(pg_admin_url):
    """One migrated database for the module (tests truncate it): creating and migrating a
    database per test would cost more than the tests themselves."""
    import asyncio
    import uuid

    import asyncpg

    name = f"ff_test_rem_{uuid.uuid4().hex[:10]}"
    url = f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate_url(url, "remediation", MIGRATIONS))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pool(module_database):
    pool = await create_pool(module_database)
    async with pool.acquire() as conn:
        await conn.execute(
            "TRUNCATE remediation.savings, remediation.commands, remediation.audit_log"
        )
    yield pool
    await pool.close()


def command(
    action: str,
    resource_id: str,
    *,
    mode: str = "execute",
    approval: bool = False,
    params: dict | None = None,
    account: str = "111122223333",
    cause: str = "anom-1",
    expires_in: timedelta = timedelta(hours=1),
    playbook: str | None = "test-playbook",
    issued_at: datetime | None = None,
) -> RemediationCommandV1:
    issued = issued_at or NOW
    return RemediationCommandV1(
        command_id=derive_command_id(cause, action, resource_id),
        issued_at=issued,
        action=action,
        target=RemediationTargetV1(
            provider="AWS",
            account_id=account,
            region="us-east-1",
            resource_id=resource_id,
            resource_type="instance",
        ),
        params=params or {},
        reason=RemediationReasonV1(anomaly_id=cause, text="test"),
        mode=mode,
        requires_approval=approval,
        expected_monthly_savings=Decimal("100.00"),
        currency="USD",
        expires_at=issued + expires_in,
        playbook=playbook,
    )


class CountingImpls(dict):
    """The real implementations, counting how often each action is applied."""

    def __init__(self, crash_after_apply: bool = False):
        super().__init__(implementations())
        self.applied: list[str] = []
        for name, impl in list(self.items()):
            self[name] = _Counting(impl, self.applied, name, crash_after_apply)


class Killed(BaseException):
    """Stands for the process being killed right after the cloud call returned."""


class _Counting:
    def __init__(self, impl, applied, name, crash):
        self._impl, self._applied, self._name, self._crash = impl, applied, name, crash

    def __getattr__(self, item):
        return getattr(self._impl, item)

    def apply(self, *args, **kwargs):
        self._applied.append(self._name)
        out = self._impl.apply(*args, **kwargs)
        if self._crash:
            raise Killed()
        return out


def executor(pool, impls, policy: Policy | None = None, clock=None) -> Executor:
    return Executor(pool, impls, lambda name: policy or Policy(), clock=clock)


async def submit(pool, cmd: RemediationCommandV1) -> None:
    async with store.transaction(pool) as conn:
        await store.insert_command(conn, cmd, initial_status(cmd), actor="test")


async def row(pool, command_id):
    async with pool.acquire() as conn:
        return await store.get_command(conn, command_id)


async def events(pool, command_id) -> list[str]:
    async with pool.acquire() as conn:
        return [a["event"] for a in await store.audit_events(conn, command_id)]


async def test_stop_instance_executes_and_leaves_a_full_audit_row(pool, aws):
    iid = run_instance()
    cmd = command("stop-instance", iid)
    await submit(pool, cmd)
    await executor(pool, implementations()).handle(cmd.command_id)
    assert instance_state(iid)[0] == "stopped"
    done = await row(pool, cmd.command_id)
    assert done["status"] == "executed" and done["result"]["outcome"] == "done"
    assert done["undo"] == {"start": True}
    async with pool.acquire() as conn:
        audit = await store.audit_events(conn, cmd.command_id)
    assert [a["event"] for a in audit] == ["issued", "intent", "step", "executed"]
    assert audit[-1]["state_before"]["state"] == "running"
    assert audit[-1]["state_after"]["state"] == "stopped"


async def test_guardrail_protected_tag_blocks_the_action(pool, aws):
    iid = run_instance(tags={"finfocus:protect": "true"})
    cmd = command("stop-instance", iid)
    await submit(pool, cmd)
    impls = CountingImpls()
    await executor(pool, impls).handle(cmd.command_id)
    assert instance_state(iid)[0] == "running"
    assert impls.applied == []
    blocked = await row(pool, cmd.command_id)
    assert blocked["status"] == "rejected"
    assert blocked["result"]["rule"] == "protected-tag"
    assert (await events(pool, cmd.command_id))[-1] == "blocked"


async def test_guardrail_deny_list_blocks_the_action(pool, aws):
    iid = run_instance()
    cmd = command("stop-instance", iid)
    await submit(pool, cmd)
    await executor(pool, implementations(), Policy(deny=(iid,))).handle(cmd.command_id)
    assert instance_state(iid)[0] == "running"
    assert (await row(pool, cmd.command_id))["result"]["rule"] == "deny-list"


async def test_guardrail_rate_limit_defers_past_the_hourly_quota_per_account(pool, aws):
    ids = [run_instance() for _ in range(3)]
    cmds = [
        command("stop-instance", iid, cause=f"a{i}", expires_in=timedelta(hours=3))
        for i, iid in enumerate(ids)
    ]
    other_account = command("stop-instance", run_instance(), cause="x", account="999999999999")
    for cmd in [*cmds, other_account]:
        await submit(pool, cmd)
    ex = executor(pool, implementations(), Policy(rate_limit_per_hour=2))
    for cmd in [*cmds, other_account]:
        await ex.handle(cmd.command_id)
    statuses = [(await row(pool, c.command_id))["status"] for c in cmds]
    assert statuses == ["executed", "executed", "approved"]
    assert instance_state(ids[2])[0] == "running"
    assert (await events(pool, cmds[2].command_id))[-1] == "deferred"
    # a deferred command is not polled again at once (no describe call every sweep)
    assert (await row(pool, cmds[2].command_id))["claimed_until"] > datetime.now(UTC) + timedelta(
        seconds=50
    )
    async with pool.acquire() as conn:
        assert cmds[2].command_id not in await store.due_commands(conn, datetime.now(UTC))
    assert (await row(pool, other_account.command_id))[
        "status"
    ] == "executed"  # quota is per account
    # an hour later the deferred command runs
    later = executor(
        pool,
        implementations(),
        Policy(rate_limit_per_hour=2),
        clock=lambda: datetime.now(UTC) + timedelta(minutes=61),
    )
    await later.sweep()
    assert (await row(pool, cmds[2].command_id))["status"] == "executed"


async def test_guardrail_expired_approval_never_runs(pool, aws):
    iid = run_instance()
    cmd = command(
        "stop-instance",
        iid,
        approval=True,
        issued_at=NOW - timedelta(hours=2),
        expires_in=timedelta(hours=1),
    )
    await submit(pool, cmd)
    assert (await row(pool, cmd.command_id))["status"] == "pending-approval"
    async with pool.acquire() as conn:
        changed, message = await store.decide(conn, cmd.command_id, True, actor="cli:test")
    assert not changed and "expired" in message
    impls = CountingImpls()
    await executor(pool, impls).sweep()
    assert impls.applied == []
    assert instance_state(iid)[0] == "running"
    assert (await row(pool, cmd.command_id))["status"] == "expired"


async def test_guardrail_dry_run_audits_what_would_happen_and_changes_nothing(pool, aws):
    iid = run_instance()
    cmd = command("stop-instance", iid, mode="dry-run")
    await submit(pool, cmd)
    impls = CountingImpls()
    await executor(pool, impls).handle(cmd.command_id)
    assert impls.applied == []
    assert instance_state(iid)[0] == "running"
    done = await row(pool, cmd.command_id)
    assert done["status"] == "dry-run"
    assert done["result"]["would"]["state"] == "stopped"
    async with pool.acquire() as conn:
        audit = await store.audit_events(conn, cmd.command_id)
    assert audit[-1]["event"] == "dry-run"
    assert audit[-1]["state_before"]["state"] == "running"


async def test_guardrail_executor_killed_mid_action_does_not_act_twice_on_restart(pool, aws):
    ec2 = ec2_client()
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    cmd = command("delete-volume", vol)
    await submit(pool, cmd)
    first = CountingImpls(crash_after_apply=True)
    with pytest.raises(Killed):
        await executor(pool, first).handle(cmd.command_id)
    assert first.applied == ["delete-volume"]
    assert (await row(pool, cmd.command_id))[
        "status"
    ] == "approved"  # nothing recorded after acting
    # restart: the lease of the killed executor has lapsed
    await executor(
        pool, implementations(), clock=lambda: datetime.now(UTC) + timedelta(minutes=6)
    ).sweep()
    done = await row(pool, cmd.command_id)
    assert done["status"] == "executed"
    snaps = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol]}]
    )
    assert len(snaps["Snapshots"]) == 1  # not snapshotted twice
    assert done["undo"]["snapshot_id"] == snaps["Snapshots"][0]["SnapshotId"]  # the undo survived
    assert [e for e in await events(pool, cmd.command_id) if e in ("intent", "resumed")] == [
        "intent",
        "resumed",
    ]


async def test_approval_required_waits_then_runs_once_approved(pool, aws):
    iid = run_instance()
    cmd = command("stop-instance", iid, approval=True)
    await submit(pool, cmd)
    ex = executor(pool, implementations())
    await ex.handle(cmd.command_id)
    assert instance_state(iid)[0] == "running"
    assert (await row(pool, cmd.command_id))["status"] == "pending-approval"
    await ex.handle(cmd.command_id)  # asked once, however often it is looked at
    assert await events(pool, cmd.command_id) == ["issued", "approval-requested"]
    async with pool.acquire() as conn:
        assert (await store.decide(conn, cmd.command_id, True, actor="cli:test"))[0]
    await ex.sweep()
    assert instance_state(iid)[0] == "stopped"
    assert await events(pool, cmd.command_id) == [
        "issued",
        "approval-requested",
        "approved",
        "intent",
        "step",
        "executed",
    ]


async def test_rejected_command_never_runs(pool, aws):
    iid = run_instance()
    cmd = command("stop-instance", iid, approval=True)
    await submit(pool, cmd)
    async with pool.acquire() as conn:
        assert (
            await store.decide(conn, cmd.command_id, False, actor="cli:test", reason="not now")
        )[0]
    await executor(pool, implementations()).sweep()
    assert instance_state(iid)[0] == "running"
    assert (await row(pool, cmd.command_id))["status"] == "rejected"


async def test_resize_instance_then_undo_restores_the_previous_type(pool, aws):
    iid = run_instance(instance_type="m5.xlarge")
    cmd = command("resize-instance", iid, params={"instance_type": "m5.large"})
    await submit(pool, cmd)
    ex = executor(pool, implementations())
    await ex.handle(cmd.command_id)
    assert instance_state(iid) == ("running", "m5.large")
    async with pool.acquire() as conn:
        assert (await store.request_undo(conn, cmd.command_id, actor="cli:test"))[0]
    await ex.sweep()
    assert instance_state(iid) == ("running", "m5.xlarge")
    assert (await row(pool, cmd.command_id))["undone_at"] is not None
    assert (await events(pool, cmd.command_id))[-2:] == ["undo-requested", "undone"]


async def test_delete_volume_snapshots_first_and_undo_restores_from_the_snapshot(pool, aws):
    ec2 = ec2_client()
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=20, VolumeType="gp3")["VolumeId"]
    cmd = command("delete-volume", vol)
    await submit(pool, cmd)
    ex = executor(pool, implementations())
    await ex.handle(cmd.command_id)
    done = await row(pool, cmd.command_id)
    assert done["status"] == "executed"
    snapshot_id = done["undo"]["snapshot_id"]
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["VolumeId"] == vol
    assert vol not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    async with pool.acquire() as conn:
        await store.request_undo(conn, cmd.command_id, actor="cli:test")
    await ex.sweep()
    restored = (await row(pool, cmd.command_id))["result"]["undo"]["state_after"][
        "restored_volume_id"
    ]
    assert ec2.describe_volumes(VolumeIds=[restored])["Volumes"][0]["SnapshotId"] == snapshot_id


async def test_delete_volume_refuses_an_attached_volume(pool, aws):
    ec2 = ec2_client()
    iid = run_instance()
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    cmd = command("delete-volume", vol)
    await submit(pool, cmd)
    await executor(pool, implementations()).handle(cmd.command_id)
    failed = await row(pool, cmd.command_id)
    assert failed["status"] == "failed" and "attached" in failed["result"]["detail"]
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"]


async def test_release_address_and_tag_resource_with_undo(pool, aws):
    ec2 = ec2_client()
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    release = command("release-address", alloc)
    iid = run_instance(tags={"team": "a"})
    tag = command("tag-resource", iid, params={"tags": {"team": "b", "finfocus:reviewed": "yes"}})
    for c in (release, tag):
        await submit(pool, c)
    ex = executor(pool, implementations())
    await ex.handle(release.command_id)
    await ex.handle(tag.command_id)
    assert alloc not in {a.get("AllocationId") for a in ec2.describe_addresses()["Addresses"]}
    assert (await row(pool, release.command_id))["status"] == "executed"
    tags = {
        t["Key"]: t["Value"]
        for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    }
    assert tags["team"] == "b" and tags["finfocus:reviewed"] == "yes"
    async with pool.acquire() as conn:
        await store.request_undo(conn, tag.command_id, actor="cli:test")
        refused = await store.request_undo(conn, release.command_id, actor="cli:test")
    assert not refused[0] and "cannot be undone" in refused[1]
    await ex.sweep()
    tags = {
        t["Key"]: t["Value"]
        for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    }
    assert tags == {"team": "a"}


async def test_scale_down_lowers_desired_capacity_and_undo_restores_it(pool, aws):
    import boto3

    asg = boto3.client("autoscaling", region_name="us-east-1")
    asg.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=AMI, InstanceType="t3.micro"
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="web",
        LaunchConfigurationName="lc",
        MinSize=2,
        MaxSize=6,
        DesiredCapacity=4,
        AvailabilityZones=["us-east-1a"],
    )
    cmd = command("scale-down", "web", params={"desired_capacity": 1})
    await submit(pool, cmd)
    ex = executor(pool, implementations())
    await ex.handle(cmd.command_id)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert (group["DesiredCapacity"], group["MinSize"]) == (1, 1)
    async with pool.acquire() as conn:
        await store.request_undo(conn, cmd.command_id, actor="cli:test")
    await ex.sweep()
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert (group["DesiredCapacity"], group["MinSize"]) == (4, 2)


async def test_audit_log_is_append_only(pool):
    import asyncpg

    async with pool.acquire() as conn:
        await store.append_audit(conn, "c1", "issued", actor="test")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE remediation.audit_log SET event = 'x'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM remediation.audit_log")


async def test_notify_posts_to_the_webhook_named_by_a_secret(pool, monkeypatch):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from finfocus.secrets import EnvironmentSecrets

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        secrets = EnvironmentSecrets(
            {"FINFOCUS_SECRET_TEAM_HOOK": f"http://127.0.0.1:{server.server_port}/hook"}
        )
        cmd = command(
            "notify",
            "AWS/111122223333/EC2",
            params={"channel": "slack", "webhook_secret": "team-hook"},
        )
        await submit(pool, cmd)
        await executor(pool, implementations(secrets)).handle(cmd.command_id)
    finally:
        server.shutdown()
    assert received == [{"text": "test"}]
    assert (await row(pool, cmd.command_id))["result"]["state_after"]["notified"] == "slack"


async def test_notify_without_a_configured_webhook_fails_with_the_reason(pool):
    from finfocus.secrets import EnvironmentSecrets

    cmd = command("notify", "dim", params={"channel": "teams"})
    await submit(pool, cmd)
    await executor(pool, implementations(EnvironmentSecrets({}))).handle(cmd.command_id)
    failed = await row(pool, cmd.command_id)
    assert failed["status"] == "failed" and "no webhook configured" in failed["result"]["detail"]
