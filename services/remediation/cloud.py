"""Action implementations: what each registered action does to a real resource (boto3, webhooks).

Each implementation observes the target's state, says whether that state already is the
action's goal, previews, applies and, where it can, undoes. `apply` gets the state before the
first attempt (from the executor's first intent), journals each change through `step` right
after making it, skips the steps `done` names and checks the target before each change, so a
run resumed after a kill finishes the work once and returns the undo of the original state.
Calls are synchronous; the executor runs them in a worker thread.
Credentials come from the secrets provider (`aws/credentials`) or boto3's standard chain,
never from playbooks; `AWS_ENDPOINT_URL` and `AWS_REGION` are honoured as boto3 does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from finfocus.secrets import SecretsProvider
from schemas.remediation import RemediationCommandV1, RemediationTargetV1

logger = logging.getLogger(__name__)
COMMAND_TAG = "finfocus:command-id"


class ActionRefused(RuntimeError):
    """The resource is not in a state the action may touch (e.g. a volume still attached)."""


Step = Callable[..., None] | None


def _step(step: Step, name: str, **data: Any) -> None:
    if step is not None:
        step(name, **data)


class ActionImpl(Protocol):
    def observe(self, target: RemediationTargetV1, params: dict) -> dict: ...
    def satisfied(self, state: dict, params: dict) -> bool: ...
    def preview(self, state: dict, params: dict) -> dict: ...
    def apply(
        self,
        command: RemediationCommandV1,
        params: dict,
        state: dict,
        *,
        step: Step = None,
        done: frozenset = frozenset(),
    ) -> tuple[dict, dict | None]: ...
    def undo(self, target: RemediationTargetV1, undo: dict, command_id: str = "") -> dict: ...


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

        region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
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
        return {
            "exists": True,
            "state": inst["State"]["Name"],
            "instance_type": inst["InstanceType"],
            "tags": _tags(inst.get("Tags")),
        }


class StopInstance(_Ec2Instance):
    def satisfied(self, state, params):
        return state.get("state") in {"stopped", "stopping"}

    def preview(self, state, params):
        return {**state, "state": "stopped"}

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        if not self.satisfied(self.observe(command.target, params), params):
            self.ec2(command.target).stop_instances(InstanceIds=[command.target.resource_id])
            _step(step, "stopped")
        after = self.observe(command.target, params)
        return after, {"start": state.get("state") == "running"}

    def undo(self, target, undo, command_id=""):
        if undo.get("start"):
            self.ec2(target).start_instances(InstanceIds=[target.resource_id])
        return self.observe(target, {})


class ResizeInstance(_Ec2Instance):
    def satisfied(self, state, params):
        return state.get("instance_type") == params["instance_type"]

    def preview(self, state, params):
        return {**state, "instance_type": params["instance_type"]}

    def _resize(self, target, instance_type: str, restart: bool, step: Step = None) -> None:
        """Stop, modify, start: each step only when the instance is not past it already, so
        an interrupted resize resumes where it stopped (and restarts what was running)."""
        ec2 = self.ec2(target)
        now = self.observe(target, {})
        if now.get("instance_type") != instance_type:
            if now.get("state") != "stopped":
                ec2.stop_instances(InstanceIds=[target.resource_id])
                _step(step, "stopped")
            ec2.get_waiter("instance_stopped").wait(
                InstanceIds=[target.resource_id], WaiterConfig={"Delay": 2, "MaxAttempts": 150}
            )
            ec2.modify_instance_attribute(
                InstanceId=target.resource_id, InstanceType={"Value": instance_type}
            )
            _step(step, "modified", instance_type=instance_type)
            now = self.observe(target, {})
        if restart and now.get("state") not in {"running", "pending"}:
            ec2.start_instances(InstanceIds=[target.resource_id])
            _step(step, "started")

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        running = state.get("state") in {"running", "pending"}
        self._resize(command.target, params["instance_type"], running, step)
        return self.observe(command.target, params), {
            "instance_type": state["instance_type"],
            "restart": running,
        }

    def undo(self, target, undo, command_id=""):
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

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        ec2 = self.clients.client("ec2", command.target.region)
        if not self.satisfied(self.observe(command.target, params), params):
            ec2.create_tags(
                Resources=[command.target.resource_id],
                Tags=[{"Key": k, "Value": v} for k, v in params["tags"].items()],
            )
            _step(step, "tagged")
        previous = {k: state["tags"].get(k) for k in params["tags"]}
        return self.observe(command.target, params), {"previous": previous}

    def undo(self, target, undo, command_id=""):
        ec2 = self.clients.client("ec2", target.region)
        restore = {k: v for k, v in undo["previous"].items() if v is not None}
        remove = [k for k, v in undo["previous"].items() if v is None]
        if remove:
            ec2.delete_tags(Resources=[target.resource_id], Tags=[{"Key": k} for k in remove])
        if restore:
            ec2.create_tags(
                Resources=[target.resource_id],
                Tags=[{"Key": k, "Value": v} for k, v in restore.items()],
            )
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
        return {
            "exists": True,
            "state": vol["State"],
            "size_gib": vol["Size"],
            "volume_type": vol.get("VolumeType"),
            "availability_zone": vol["AvailabilityZone"],
            "attachments": [a["InstanceId"] for a in vol.get("Attachments", [])],
            "tags": _tags(vol.get("Tags")),
        }

    def satisfied(self, state, params):
        return not state.get("exists", True)

    def preview(self, state, params):
        return {
            "exists": False,
            "snapshot": "would be created" if params.get("snapshot", True) else None,
        }

    @staticmethod
    def _existing_snapshot(ec2, command_id: str) -> str | None:
        """The snapshot an earlier, interrupted run of the same command took (tagged with it)."""
        mine = ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{COMMAND_TAG}", "Values": [command_id]}]
        )
        return mine["Snapshots"][0]["SnapshotId"] if mine["Snapshots"] else None

    def _snapshot(self, ec2, command) -> str:
        snap = ec2.create_snapshot(
            VolumeId=command.target.resource_id,
            Description=f"finfocus: before deleting {command.target.resource_id} ({command.command_id})",
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [{"Key": COMMAND_TAG, "Value": command.command_id}],
                }
            ],
        )
        ec2.get_waiter("snapshot_completed").wait(
            SnapshotIds=[snap["SnapshotId"]], WaiterConfig={"Delay": 2, "MaxAttempts": 300}
        )
        return snap["SnapshotId"]

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        if state.get("attachments") or state.get("state") == "in-use":
            raise ActionRefused(
                f"{command.target.resource_id} is attached to {state.get('attachments')}"
            )
        ec2 = self.clients.client("ec2", command.target.region)
        exists = self.observe(command.target, params).get("exists", False)
        snapshot_id = None
        if params.get("snapshot", True):
            snapshot_id = self._existing_snapshot(ec2, command.command_id)
            if snapshot_id is None:
                if not exists:
                    raise ActionRefused(
                        f"{command.target.resource_id} is gone and no snapshot of it "
                        f"tagged {command.command_id} exists: nothing to undo with"
                    )
                snapshot_id = self._snapshot(ec2, command)
                _step(step, "snapshot", snapshot_id=snapshot_id)
        if exists:
            ec2.delete_volume(VolumeId=command.target.resource_id)
            _step(step, "deleted")
        undo = None
        if snapshot_id:
            undo = {
                "snapshot_id": snapshot_id,
                "availability_zone": state["availability_zone"],
                "volume_type": state.get("volume_type"),
                "tags": state.get("tags", {}),
            }
        return {"exists": False, "snapshot_id": snapshot_id}, undo

    def undo(self, target, undo, command_id=""):
        ec2 = self.clients.client("ec2", target.region)
        marker = f"undo:{command_id}" if command_id else None
        if marker:  # a volume restored by an interrupted undo of the same command is reused
            found = ec2.describe_volumes(
                Filters=[{"Name": f"tag:{COMMAND_TAG}", "Values": [marker]}]
            )["Volumes"]
            if found:
                return {
                    "restored_volume_id": found[0]["VolumeId"],
                    "from_snapshot": undo["snapshot_id"],
                }
        kwargs = {"SnapshotId": undo["snapshot_id"], "AvailabilityZone": undo["availability_zone"]}
        if undo.get("volume_type"):
            kwargs["VolumeType"] = undo["volume_type"]
        tags = dict(undo.get("tags") or {})
        if marker:
            tags[COMMAND_TAG] = marker
        if tags:
            kwargs["TagSpecifications"] = [
                {
                    "ResourceType": "volume",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
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
        return {
            "exists": True,
            "public_ip": addr.get("PublicIp"),
            "allocation_id": addr.get("AllocationId"),
            "association_id": addr.get("AssociationId"),
            "instance_id": addr.get("InstanceId"),
            "tags": _tags(addr.get("Tags")),
        }

    def satisfied(self, state, params):
        return not state.get("exists", True)

    def preview(self, state, params):
        return {"exists": False}

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        if state.get("association_id") or state.get("instance_id"):
            raise ActionRefused(
                f"{command.target.resource_id} is associated with {state.get('instance_id')}"
            )
        ec2 = self.clients.client("ec2", command.target.region)
        if not self.observe(command.target, params).get("exists", False):
            return {"exists": False, "released_ip": state.get("public_ip")}, None
        if state.get("allocation_id"):
            ec2.release_address(AllocationId=state["allocation_id"])
        else:
            ec2.release_address(PublicIp=state["public_ip"])
        _step(step, "released")
        return {"exists": False, "released_ip": state.get("public_ip")}, None

    def undo(self, target, undo, command_id=""):
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
            AutoScalingGroupNames=[self.group_name(target.resource_id)]
        )["AutoScalingGroups"]
        if not groups:
            return {"exists": False}
        g = groups[0]
        return {
            "exists": True,
            "desired_capacity": g["DesiredCapacity"],
            "min_size": g["MinSize"],
            "max_size": g["MaxSize"],
            "tags": _tags(g.get("Tags")),
        }

    def satisfied(self, state, params):
        return state.get("desired_capacity", 0) <= params["desired_capacity"]

    def preview(self, state, params):
        return {
            **state,
            "desired_capacity": params["desired_capacity"],
            "min_size": min(
                state.get("min_size", 0), params.get("min_size", params["desired_capacity"])
            ),
        }

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        asg = self.clients.client("autoscaling", command.target.region)
        desired = params["desired_capacity"]
        min_size = min(state["min_size"], params.get("min_size", desired), desired)
        if not self.satisfied(self.observe(command.target, params), params):
            asg.update_auto_scaling_group(
                AutoScalingGroupName=self.group_name(command.target.resource_id),
                DesiredCapacity=desired,
                MinSize=min_size,
            )
            _step(step, "scaled")
        return self.observe(command.target, params), {
            "desired_capacity": state["desired_capacity"],
            "min_size": state["min_size"],
        }

    def undo(self, target, undo, command_id=""):
        asg = self.clients.client("autoscaling", target.region)
        asg.update_auto_scaling_group(
            AutoScalingGroupName=self.group_name(target.resource_id),
            MinSize=undo["min_size"],
            DesiredCapacity=undo["desired_capacity"],
        )
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

    def apply(self, command, params, state, *, step=None, done=frozenset()):
        text = params.get("message") or command.reason.text
        channel = params.get("channel", "log")
        if "posted" in done:  # a resumed run: the notice went out before the interruption
            return {
                "notified": channel,
                "detail": "sent before an interruption; not sent again",
            }, None
        if channel == "log":
            logger.warning("remediation notice: %s", text)
            return {"notified": "log"}, None
        secret_name = params.get("webhook_secret", "remediation-webhook-url")
        url = self.secrets.get(secret_name) if self.secrets else None
        if url is None:
            raise ActionRefused(f"no webhook configured (secret {secret_name!r})")
        import httpx

        body = {"text": text} if channel == "slack" else {"@type": "MessageCard", "text": text}
        try:
            response = httpx.post(url.reveal(), json=body, timeout=10)
        except httpx.HTTPError as exc:
            # httpx's messages name the URL, which is the credential: only the kind of failure
            raise ActionRefused(
                f"webhook of secret {secret_name!r} unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 300:
            raise ActionRefused(
                f"webhook of secret {secret_name!r} answered HTTP {response.status_code}"
            )
        _step(step, "posted")
        return {"notified": channel, "http_status": response.status_code}, None

    def undo(self, target, undo, command_id=""):
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
