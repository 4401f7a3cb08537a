"""The action registry: every remediation action by kebab-case name, with its parameters model.

Pure: names, parameter models and what each action needs. The code that talks to a cloud
lives in `cloud.py`; playbooks are validated against this registry before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Params(BaseModel):
    """Base of every action's parameters: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class NotifyParams(Params):
    channel: Literal["slack", "teams", "log"] = Field("log", description="Webhook style")
    webhook_secret: str = Field(
        "remediation-webhook-url", description="Secret name holding the webhook URL"
    )
    message: str | None = Field(None, description="Text to send; the command's reason when unset")


class TagResourceParams(Params):
    tags: dict[str, str] = Field(min_length=1, description="Tags to set on the resource")


class StopInstanceParams(Params):
    pass


class ResizeInstanceParams(Params):
    instance_type: str = Field(min_length=1, description="Instance type to resize to")


class DeleteVolumeParams(Params):
    snapshot: bool = Field(True, description="Snapshot the volume before deleting it")


class ReleaseAddressParams(Params):
    pass


class ScaleDownParams(Params):
    desired_capacity: int = Field(ge=0, le=100_000, description="New desired capacity of the group")
    min_size: int | None = Field(
        None, ge=0, le=100_000, description="New minimum size (lowered if needed)"
    )


@dataclass(frozen=True)
class ActionSpec:
    """A registered action: its name, parameters model and the kinds of resource it acts on."""

    name: str
    params: type[Params]
    resource_types: tuple[str, ...]
    reversible: bool
    changes_resources: bool
    description: str


REGISTRY: dict[str, ActionSpec] = {}


def register(spec: ActionSpec) -> ActionSpec:
    if not KEBAB.match(spec.name):
        raise ValueError(f"action name {spec.name!r} is not kebab-case")
    if spec.name in REGISTRY:
        raise ValueError(f"action {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


for _spec in (
    ActionSpec("notify", NotifyParams, ("*",), False, False, "Post the reason to a chat webhook"),
    ActionSpec(
        "tag-resource",
        TagResourceParams,
        ("instance", "volume", "snapshot", "address"),
        True,
        True,
        "Set tags on an EC2 resource",
    ),
    ActionSpec(
        "stop-instance", StopInstanceParams, ("instance",), True, True, "Stop an EC2 instance"
    ),
    ActionSpec(
        "resize-instance",
        ResizeInstanceParams,
        ("instance",),
        True,
        True,
        "Stop, change the type of and restart an EC2 instance",
    ),
    ActionSpec(
        "delete-volume",
        DeleteVolumeParams,
        ("volume",),
        True,
        True,
        "Snapshot then delete an unattached EBS volume",
    ),
    ActionSpec(
        "release-address",
        ReleaseAddressParams,
        ("address",),
        False,
        True,
        "Release an unassociated Elastic IP",
    ),
    ActionSpec(
        "scale-down",
        ScaleDownParams,
        ("auto-scaling-group",),
        True,
        True,
        "Lower an auto-scaling group's desired capacity",
    ),
):
    register(_spec)


class UnknownAction(ValueError):
    """A playbook or command names an action that is not registered."""


def validate_params(action: str, params: dict | None) -> Params:
    """The parsed parameters of `action`; unknown actions and keys raise ValueError."""
    spec = REGISTRY.get(action)
    if spec is None:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownAction(f"unknown action {action!r} (registered: {known})")
    try:
        return spec.params.model_validate(params or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"action {action!r}: invalid parameters: {problems}") from None


def resource_kind(resource_id: str, resource_type: str | None = None) -> str:
    """The kind of an AWS resource from its id prefix (or its declared type)."""
    prefixes = {
        "i-": "instance",
        "vol-": "volume",
        "snap-": "snapshot",
        "eipalloc-": "address",
        "nat-": "nat-gateway",
    }
    for prefix, kind in prefixes.items():
        if resource_id.startswith(prefix):
            return kind
    if resource_id.startswith("arn:aws:autoscaling") or (resource_type or "").lower() in {
        "auto-scaling-group",
        "autoscalinggroup",
    }:
        return "auto-scaling-group"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", resource_id):
        return "address"
    return (resource_type or "unknown").lower()
