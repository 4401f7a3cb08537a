"""The bus is a trust boundary, and the executor is safe to kill: forged commands and
anomalies change nothing (PostgreSQL and a moto server), and an executor killed between two
steps of an action finishes it once on resume, keeping the undo of the original state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finfocus.signing import SigningKeys, ensure_key_files, sign
from schemas.remediation import CommandMode
from schemas.topics import Topics
from services.remediation import store
from services.remediation.cloud import implementations
from services.remediation.executor import Executor
from services.remediation.guardrails import Policy, policy_for
from tests.fixtures.remediation import support
from tests.fixtures.remediation.support import AMI, ec2_client, instance_state, run_instance
from tests.integration.test_remediation_executor import (  # noqa: F401 - fixtures
    command,
    events,
    module_database,
    pool,
    row,
    submit,
)

pytestmark = pytest.mark.integration

moto_endpoint = support.moto_endpoint
aws = support.aws
TOPIC = Topics.REMEDIATION_COMMANDS


@pytest.fixture
def keys(tmp_path) -> SigningKeys:
    ensure_key_files(tmp_path, ["remediation"])
    return SigningKeys(home=tmp_path)


def trusting_executor(pool, keys, policy: Policy | None = None, **kwargs) -> Executor:  # noqa: F811
    return Executor(pool, implementations(), lambda name: policy or Policy(), keys=keys, **kwargs)


async def count_commands(pool) -> int:  # noqa: F811
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM remediation.commands")


async def test_forged_execute_command_with_an_unknown_id_changes_nothing(pool, aws, keys):  # noqa: F811
    iid = run_instance()
    forged = command("stop-instance", iid, mode="execute", approval=False, cause="forged")
    value = forged.model_dump_json().encode()
    executor = trusting_executor(pool, keys)
    unsigned = await executor.receive(value, {}, TOPIC)
    assert unsigned is not None and "unsigned message" in unsigned
    # even a validly signed message names nothing the planner stored: still nothing runs
    signed = await executor.receive(value, dict([sign(keys, "remediation", TOPIC, value)]), TOPIC)
    assert signed is not None and f"unknown command {forged.command_id}" in signed
    assert instance_state(iid)[0] == "running"
    assert await count_commands(pool) == 0


async def test_forged_copy_of_a_stored_command_with_execute_and_no_approval_changes_nothing(
    pool,  # noqa: F811
    aws,
    keys,
):
    iid = run_instance()
    stored = command("stop-instance", iid, mode="dry-run", approval=True)
    await submit(pool, stored)
    ec2 = ec2_client()
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    stored_volume = command(
        "delete-volume", vol, mode="execute", approval=True, params={"snapshot": True}
    )
    await submit(pool, stored_volume)
    executor = trusting_executor(pool, keys)
    altered = [
        stored.model_copy(update={"mode": CommandMode.EXECUTE, "requires_approval": False}),
        stored.model_copy(update={"playbook": "no-such-playbook"}),
        stored_volume.model_copy(
            update={"requires_approval": False, "params": {"snapshot": False}}
        ),
    ]
    for message in altered:
        value = message.model_dump_json().encode()
        reason = await executor.receive(
            value, dict([sign(keys, "remediation", TOPIC, value)]), TOPIC
        )
        assert reason is not None and "differs from the one the planner stored" in reason
    assert instance_state(iid)[0] == "running"
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"]
    assert (
        ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol]}])[
            "Snapshots"
        ]
        == []
    )
    assert (await row(pool, stored.command_id))["status"] == "approved"
    assert (await row(pool, stored_volume.command_id))["status"] == "pending-approval"
    genuine = stored.model_dump_json().encode()  # the planner's own message runs, as stored
    assert (
        await executor.receive(genuine, dict([sign(keys, "remediation", TOPIC, genuine)]), TOPIC)
        is None
    )
    assert (await row(pool, stored.command_id))["status"] == "dry-run"
    assert instance_state(iid)[0] == "running"


async def test_command_whose_playbook_is_gone_is_blocked_not_run_without_its_guardrails(pool, aws):  # noqa: F811
    iid = run_instance()
    cmd = command("stop-instance", iid, playbook="deleted-playbook")
    await submit(pool, cmd)
    gone = policy_for(None, global_protect_tag="finfocus:protect=true", default_rate_limit=10)
    await Executor(pool, implementations(), lambda name: gone).handle(cmd.command_id)
    assert instance_state(iid)[0] == "running"
    assert (await row(pool, cmd.command_id))["result"]["rule"] == "unknown-playbook"


async def test_playbook_now_dry_run_or_requiring_approval_wins_over_the_stored_command(pool, aws):  # noqa: F811
    first, second = run_instance(), run_instance()
    dry, approve = (
        command("stop-instance", first, cause="a"),
        command("stop-instance", second, cause="b"),
    )
    for c in (dry, approve):
        await submit(pool, c)
    await Executor(pool, implementations(), lambda name: Policy(mode="dry-run")).handle(
        dry.command_id
    )
    await Executor(pool, implementations(), lambda name: Policy(approval_required=True)).handle(
        approve.command_id
    )
    assert instance_state(first)[0] == instance_state(second)[0] == "running"
    assert (await row(pool, dry.command_id))["status"] == "dry-run"
    assert (await row(pool, approve.command_id))["status"] == "pending-approval"


# --- safe to kill -----------------------------------------------------------------------


class Killed(BaseException):
    """Stands for kill -9 of the executor at a step boundary."""


def kill_at(step_name: str):
    def hook(command_id: str, name: str) -> None:
        if name == step_name:
            raise Killed(name)

    return hook


async def crash_then_resume(pool, cmd, step_name: str) -> Executor:  # noqa: F811
    await submit(pool, cmd)
    with pytest.raises(Killed):
        await Executor(
            pool, implementations(), lambda name: Policy(), step_hook=kill_at(step_name)
        ).handle(cmd.command_id)
    assert (await row(pool, cmd.command_id))[
        "status"
    ] == "approved"  # nothing recorded after the step
    # a fresh executor (new process) after the killed one's lease lapsed
    resumed = Executor(
        pool,
        implementations(),
        lambda name: Policy(),
        clock=lambda: datetime.now(UTC) + timedelta(minutes=6),
    )
    await resumed.sweep()
    assert (await row(pool, cmd.command_id))["status"] == "executed"
    return resumed


async def steps(pool, command_id) -> list[str]:  # noqa: F811
    async with pool.acquire() as conn:
        return [
            (a["result"] or {}).get("step")
            for a in await store.audit_events(conn, command_id)
            if a["event"] == "step"
        ]


async def undo(pool, executor, command_id) -> None:  # noqa: F811
    async with pool.acquire() as conn:
        assert (await store.request_undo(conn, command_id, actor="cli:test"))[0]
    await executor.sweep()
    assert (await row(pool, command_id))["result"]["undo"]["outcome"] == "undone"


async def test_resize_killed_between_stop_and_modify_resumes_to_running_with_the_new_type(
    pool,  # noqa: F811
    aws,
):
    iid = run_instance(instance_type="m5.xlarge")
    cmd = command("resize-instance", iid, params={"instance_type": "m5.large"})
    executor = await crash_then_resume(pool, cmd, "stopped")
    assert instance_state(iid) == ("running", "m5.large")
    done = await row(pool, cmd.command_id)
    assert done["undo"] == {"instance_type": "m5.xlarge", "restart": True}
    assert await steps(pool, cmd.command_id) == ["stopped", "modified", "started"]  # each once
    await undo(pool, executor, cmd.command_id)
    assert instance_state(iid) == ("running", "m5.xlarge")


async def test_stop_killed_after_stopping_keeps_its_undo(pool, aws):  # noqa: F811
    iid = run_instance()
    cmd = command("stop-instance", iid)
    executor = await crash_then_resume(pool, cmd, "stopped")
    assert instance_state(iid)[0] == "stopped"
    assert (await row(pool, cmd.command_id))["undo"] == {"start": True}
    assert await steps(pool, cmd.command_id) == ["stopped"]
    await undo(pool, executor, cmd.command_id)
    assert instance_state(iid)[0] == "running"


async def test_tag_killed_after_tagging_keeps_its_undo(pool, aws):  # noqa: F811
    ec2 = ec2_client()
    iid = run_instance(tags={"team": "a"})
    cmd = command("tag-resource", iid, params={"tags": {"team": "b", "finfocus:reviewed": "yes"}})
    executor = await crash_then_resume(pool, cmd, "tagged")
    assert (await row(pool, cmd.command_id))["undo"] == {
        "previous": {"team": "a", "finfocus:reviewed": None}
    }
    assert await steps(pool, cmd.command_id) == ["tagged"]
    await undo(pool, executor, cmd.command_id)
    tags = {
        t["Key"]: t["Value"]
        for t in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    }
    assert tags == {"team": "a"}


async def test_delete_volume_killed_after_its_snapshot_deletes_once_and_undo_restores(pool, aws):  # noqa: F811
    ec2 = ec2_client()
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3")["VolumeId"]
    cmd = command("delete-volume", vol)
    executor = await crash_then_resume(pool, cmd, "snapshot")
    snaps = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol]}]
    )["Snapshots"]
    assert len(snaps) == 1
    assert vol not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert (await row(pool, cmd.command_id))["undo"]["snapshot_id"] == snaps[0]["SnapshotId"]
    assert await steps(pool, cmd.command_id) == ["snapshot", "deleted"]
    await undo(pool, executor, cmd.command_id)
    restored = (await row(pool, cmd.command_id))["result"]["undo"]["state_after"][
        "restored_volume_id"
    ]
    assert (
        ec2.describe_volumes(VolumeIds=[restored])["Volumes"][0]["SnapshotId"]
        == snaps[0]["SnapshotId"]
    )


async def test_scale_down_killed_after_scaling_keeps_its_undo(pool, aws):  # noqa: F811
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
    executor = await crash_then_resume(pool, cmd, "scaled")
    assert (await row(pool, cmd.command_id))["undo"] == {"desired_capacity": 4, "min_size": 2}
    await undo(pool, executor, cmd.command_id)
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert (group["DesiredCapacity"], group["MinSize"]) == (4, 2)


async def test_forged_anomaly_never_reaches_an_execute_playbook(settings, aws, tmp_path):
    from finfocus.db import reader
    from services.remediation.app import build_app
    from services.remediation.config import RemediationSettings
    from tests.fixtures.remediation.support import (
        anomaly,
        eventually,
        publish,
        publish_signed,
        read_topic,
        running,
        values,
    )

    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "stop.yaml").write_text(
        "name: stop-now\ntrigger: {anomaly: {min_severity: high}}\nresources: {types: [instance]}\n"
        "actions: [{action: stop-instance}]\nmode: execute\napproval: {required: false}\n"
    )
    iid = run_instance()
    event = anomaly(
        "anom-forged",
        dimension={
            "ProviderName": "AWS",
            "SubAccountId": "111122223333",
            "ServiceName": "Amazon Elastic Compute Cloud",
            "ResourceId": iid,
        },
    )
    value = event.model_dump_json().encode()
    config = RemediationSettings(
        **settings.model_dump(), remediation_playbooks_dir=playbooks, remediation_poll_seconds=0.3
    )
    async with running(build_app(config)):
        await publish(settings.kafka, Topics.ANOMALIES, [value])  # unsigned
        await publish_signed(
            settings, Topics.ANOMALIES, [value], issuer="ingest"
        )  # not an anomaly issuer
        letters = values(await read_topic(settings.kafka, Topics.dlq(Topics.ANOMALIES), want=2))
        assert sorted(
            "unsigned" in x["error"] or "'ingest' may not" in x["error"] for x in letters
        ) == [True, True]
        # signed by the anomaly service, but naming a resource no billing data shows: no target
        await publish_signed(settings, Topics.ANOMALIES, [value], issuer="anomaly")

        async def actions():
            async with reader(settings.database) as conn:
                return [
                    r["action"]
                    for r in await conn.fetch(
                        "SELECT action FROM remediation.v_actions WHERE anomaly_id = 'anom-forged'"
                    )
                ]

        assert await eventually(actions) == ["notify"]
    assert instance_state(iid)[0] == "running"
