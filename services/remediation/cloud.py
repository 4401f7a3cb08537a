"""Action implementations: what each registered action does to a real resource (boto3, webhooks).

Each implementation observes the target's state, says whether that state already is the
action's goal (so a command resumed after a crash never acts twice), previews, applies and,
where it can, undoes. Calls are synchronous; the executor runs them in a worker thread.
Credentials come from the secrets provider (`aws/credentials`) or boto3's standard chain,
never from playbooks; `AWS_ENDPOINT_URL` and `AWS_REGION` are honoured as boto3 does.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

from finfocus.secrets import SecretsProvider
from schemas.remediation import RemediationCommandV1, RemediationTargetV1

logger = logging.getLogger(__name__)
COMMAND_TAG = "finfocus:command-id"


class ActionRefused(RuntimeError):
    """The resource is not in a state the action may touch (e.g. a volume still attached)."""


class ActionImpl(Protocol):
    def observe(self, target: RemediationTargetV1, params: dict) -> dict: ...
    def satisfied(self, state: dict, params: dict) -> bool: ...
    def preview(self, state: dict, params: dict) -> dict: ...
    def apply(self, command: RemediationCommandV1, params: dict, state: dict) -> tuple[dict, dict | None]: ...
    def undo(self, target: RemediationTargetV1, undo: dict) -> dict: ...


class AwsClients:
    """boto3 clients per (service, region), with credentials from the secrets provider if set."""

    def __init__(self, secrets: SecretsProvider | None = None) -> None:
        self._secrets = secrets
        self._clients: dict[tuple[str, str], Any] = {}
        self._session: Any = None

    def _credentials(self) -> dict[str, str]:
        if self._secrets is None:
            return {}
        key = self._secrets.get("aws/credentials", "access_key_id")
        secret = self._secrets.get("aws/credentials", "secret_access_key")
        if key is None or secret is None:
            return {}
        out = {"aws_access_key_id": key.reveal(), "aws_secret_access_key": secret.reveal()}
        token = self._secrets.get("aws/credentials", "session_token")
        if token is not None:
            out["aws_session_token"] = token.reveal()
        return out

    def client(self, service: str, region: str | None):
        import boto3

        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        if (service, region) not in self._clients:
            # An own session, not boto3's process-wide default one: its credential chain is
            # resolved for this executor, not cached from whatever client came first.
            if self._session is None:
                self._session = boto3.session.Session()
            self._clients[(service, region)] = self._session.client(
                service, region_name=region, **self._credentials()
            )
        return self._clients[(service, region)]


def _tags(items: list[dict] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or []}


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return "NotFound" in code or code.endswith(".Malformed")


class _Ec2Instance:
    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    def ec2(self, target):
        return self.clients.client("ec2", target.region)

    def observe(self, target, params):
        try:
            found = self.ec2(target).describe_instances(InstanceIds=[target.resource_id])
        except Exception as exc:
            if _not_found(exc):
                return {"exists": False}
            raise
        instances = [i for r in found["Reservations"] for i in r["Instances"]]
        if not instances or instances[0]["State"]["Name"] == "terminated":
            return {"exists": False}
        inst = instances[0]
        return {"exists": True, "state": inst["State"]["Name"], "instance_type": inst["InstanceType"],
                "tags": _tags(inst.get("Tags"))}


class StopInstance(_Ec2Instance):
    def satisfied(self, state, params):
        return state.get("state") in {"stopped", "stopping"}

    def preview(self, state, params):
        return {**state, "state": "stopped"}

    def apply(self, command, params, state):
        ec2 = self.ec2(command.target)
        ec2.stop_instances(InstanceIds=[command.target.resource_id])
        after = self.observe(command.target, params)
        return after, {"start": state.get("state") == "running"}

    def undo(self, target, undo):
        if undo.get("start"):
            self.ec2(target).start_instances(InstanceIds=[target.resource_id])
        return self.observe(target, {})


class ResizeInstance(_Ec2Instance):
    def satisfied(self, state, params):
        return state.get("instance_type") == params["instance_type"]

    def preview(self, state, params):
        return {**state, "instance_type": params["instance_type"]}

    def _resize(self, target, instance_type: str, restart: bool) -> None:
        ec2 = self.ec2(target)
        ec2.stop_instances(InstanceIds=[target.resource_id])
        ec2.get_waiter("instance_stopped").wait(
            InstanceIds=[target.resource_id], WaiterConfig={"Delay": 2, "MaxAttempts": 150})
        ec2.modify_instance_attribute(InstanceId=target.resource_id, InstanceType={"Value": instance_type})
        if restart:
            ec2.start_instances(InstanceIds=[target.resource_id])

    def apply(self, command, params, state):
        running = state.get("state") in {"running", "pending"}
        self._resize(command.target, params["instance_type"], running)
        return self.observe(command.target, params), {"instance_type": state["instance_type"], "restart": running}

    def undo(self, target, undo):
        self._resize(target, undo["instance_type"], bool(undo.get("restart")))
        return self.observe(target, {})


class TagResource:
    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    def observe(self, target, params):
        ec2 = self.clients.client("ec2", target.region)
        found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [target.resource_id]}])
        return {"exists": True, "tags": {t["Key"]: t["Value"] for t in found["Tags"]}}

    def satisfied(self, state, params):
        return all(state["tags"].get(k) == v for k, v in params["tags"].items())

    def preview(self, state, params):
        return {**state, "tags": {**state["tags"], **params["tags"]}}

    def apply(self, command, params, state):
        ec2 = self.clients.client("ec2", command.target.region)
        ec2.create_tags(Resources=[command.target.resource_id],
                        Tags=[{"Key": k, "Value": v} for k, v in params["tags"].items()])
        previous = {k: state["tags"].get(k) for k in params["tags"]}
        return self.observe(command.target, params), {"previous": previous}

    def undo(self, target, undo):
        ec2 = self.clients.client("ec2", target.region)
        restore = {k: v for k, v in undo["previous"].items() if v is not None}
        remove = [k for k, v in undo["previous"].items() if v is None]
        if remove:
            ec2.delete_tags(Resources=[target.resource_id], Tags=[{"Key": k} for k in remove])
        if restore:
            ec2.create_tags(Resources=[target.resource_id],
                            Tags=[{"Key": k, "Value": v} for k, v in restore.items()])
        return self.observe(target, {})


class DeleteVolume:
    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    def observe(self, target, params):
        ec2 = self.clients.client("ec2", target.region)
        try:
            found = ec2.describe_volumes(VolumeIds=[target.resource_id])["Volumes"]
        except Exception as exc:
            if _not_found(exc):
                return {"exists": False}
            raise
        if not found:
            return {"exists": False}
        vol = found[0]
        return {"exists": True, "state": vol["State"], "size_gib": vol["Size"],
                "volume_type": vol.get("VolumeType"), "availability_zone": vol["AvailabilityZone"],
                "attachments": [a["InstanceId"] for a in vol.get("Attachments", [])],
                "tags": _tags(vol.get("Tags"))}

    def satisfied(self, state, params):
        return not state.get("exists", True)

    def preview(self, state, params):
        return {"exists": False, "snapshot": "would be created" if params.get("snapshot", True) else None}

    def _snapshot(self, ec2, command) -> str:
        # a snapshot left by an earlier, interrupted run of the same command is reused
        mine = ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{COMMAND_TAG}", "Values": [command.command_id]}])
        if mine["Snapshots"]:
            return mine["Snapshots"][0]["SnapshotId"]
        snap = ec2.create_snapshot(
            VolumeId=command.target.resource_id,
            Description=f"finfocus: before deleting {command.target.resource_id} ({command.command_id})",
            TagSpecifications=[{"ResourceType": "snapshot",
                                "Tags": [{"Key": COMMAND_TAG, "Value": command.command_id}]}])
        ec2.get_waiter("snapshot_completed").wait(
            SnapshotIds=[snap["SnapshotId"]], WaiterConfig={"Delay": 2, "MaxAttempts": 300})
        return snap["SnapshotId"]

    def apply(self, command, params, state):
        if state.get("attachments") or state.get("state") == "in-use":
            raise ActionRefused(f"{command.target.resource_id} is attached to {state.get('attachments')}")
        ec2 = self.clients.client("ec2", command.target.region)
        snapshot_id = self._snapshot(ec2, command) if params.get("snapshot", True) else None
        ec2.delete_volume(VolumeId=command.target.resource_id)
        undo = None
        if snapshot_id:
            undo = {"snapshot_id": snapshot_id, "availability_zone": state["availability_zone"],
                    "volume_type": state.get("volume_type"), "tags": state.get("tags", {})}
        return {"exists": False, "snapshot_id": snapshot_id}, undo

    def undo(self, target, undo):
        ec2 = self.clients.client("ec2", target.region)
        kwargs = {"SnapshotId": undo["snapshot_id"], "AvailabilityZone": undo["availability_zone"]}
        if undo.get("volume_type"):
            kwargs["VolumeType"] = undo["volume_type"]
        if undo.get("tags"):
            kwargs["TagSpecifications"] = [{"ResourceType": "volume", "Tags": [
                {"Key": k, "Value": v} for k, v in undo["tags"].items()]}]
        created = ec2.create_volume(**kwargs)
        return {"restored_volume_id": created["VolumeId"], "from_snapshot": undo["snapshot_id"]}


class ReleaseAddress:
    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    def _query(self, resource_id: str) -> dict:
        if resource_id.startswith("eipalloc-"):
            return {"AllocationIds": [resource_id]}
        return {"PublicIps": [resource_id]}

    def observe(self, target, params):
        ec2 = self.clients.client("ec2", target.region)
        try:
            found = ec2.describe_addresses(**self._query(target.resource_id))["Addresses"]
        except Exception as exc:
            if _not_found(exc):
                return {"exists": False}
            raise
        if not found:
            return {"exists": False}
        addr = found[0]
        return {"exists": True, "public_ip": addr.get("PublicIp"), "allocation_id": addr.get("AllocationId"),
                "association_id": addr.get("AssociationId"), "instance_id": addr.get("InstanceId"),
                "tags": _tags(addr.get("Tags"))}

    def satisfied(self, state, params):
        return not state.get("exists", True)

    def preview(self, state, params):
        return {"exists": False}

    def apply(self, command, params, state):
        if state.get("association_id") or state.get("instance_id"):
            raise ActionRefused(f"{command.target.resource_id} is associated with {state.get('instance_id')}")
        ec2 = self.clients.client("ec2", command.target.region)
        if state.get("allocation_id"):
            ec2.release_address(AllocationId=state["allocation_id"])
        else:
            ec2.release_address(PublicIp=state["public_ip"])
        return {"exists": False, "released_ip": state.get("public_ip")}, None

    def undo(self, target, undo):
        raise ActionRefused("a released address cannot be recovered")


class ScaleDown:
    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    @staticmethod
    def group_name(resource_id: str) -> str:
        return resource_id.split("autoScalingGroupName/", 1)[-1]

    def observe(self, target, params):
        asg = self.clients.client("autoscaling", target.region)
        groups = asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.group_name(target.resource_id)])["AutoScalingGroups"]
        if not groups:
            return {"exists": False}
        g = groups[0]
        return {"exists": True, "desired_capacity": g["DesiredCapacity"], "min_size": g["MinSize"],
                "max_size": g["MaxSize"], "tags": _tags(g.get("Tags"))}

    def satisfied(self, state, params):
        return state.get("desired_capacity", 0) <= params["desired_capacity"]

    def preview(self, state, params):
        return {**state, "desired_capacity": params["desired_capacity"],
                "min_size": min(state.get("min_size", 0), params.get("min_size", params["desired_capacity"]))}

    def apply(self, command, params, state):
        asg = self.clients.client("autoscaling", command.target.region)
        desired = params["desired_capacity"]
        min_size = min(state["min_size"], params.get("min_size", desired), desired)
        asg.update_auto_scaling_group(AutoScalingGroupName=self.group_name(command.target.resource_id),
                                      DesiredCapacity=desired, MinSize=min_size)
        return self.observe(command.target, params), {"desired_capacity": state["desired_capacity"],
                                                      "min_size": state["min_size"]}

    def undo(self, target, undo):
        asg = self.clients.client("autoscaling", target.region)
        asg.update_auto_scaling_group(AutoScalingGroupName=self.group_name(target.resource_id),
                                      MinSize=undo["min_size"], DesiredCapacity=undo["desired_capacity"])
        return self.observe(target, {})


class Notify:
    """Posts to a Slack- or Teams-style webhook whose URL is a secret; `log` only logs."""

    def __init__(self, secrets: SecretsProvider | None) -> None:
        self.secrets = secrets

    def observe(self, target, params):
        return {"exists": True, "tags": {}}

    def satisfied(self, state, params):
        return False

    def preview(self, state, params):
        return {"would_notify": params.get("channel", "log")}

    def apply(self, command, params, state):
        text = params.get("message") or command.reason.text
        channel = params.get("channel", "log")
        if channel == "log":
            logger.warning("remediation notice: %s", text)
            return {"notified": "log"}, None
        url = self.secrets.get(params.get("webhook_secret", "remediation-webhook-url")) if self.secrets else None
        if url is None:
            raise ActionRefused(f"no webhook configured (secret {params.get('webhook_secret')!r})")
        import httpx

        body = {"text": text} if channel == "slack" else {"@type": "MessageCard", "text": text}
        response = httpx.post(url.reveal(), json=body, timeout=10)
        response.raise_for_status()
        return {"notified": channel, "http_status": response.status_code}, None

    def undo(self, target, undo):
        raise ActionRefused("a notification cannot be undone")


def implementations(secrets: SecretsProvider | None = None) -> dict[str, ActionImpl]:
    """One implementation per registered action."""
    clients = AwsClients(secrets)
    return {
        "notify": Notify(secrets),
        "tag-resource": TagResource(clients),
        "stop-instance": StopInstance(clients),
        "resize-instance": ResizeInstance(clients),
        "delete-volume": DeleteVolume(clients),
        "release-address": ReleaseAddress(clients),
        "scale-down": ScaleDown(clients),
    }
