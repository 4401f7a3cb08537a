"""Terraform plans (`terraform show -json PLANFILE`) read into the same `PlanResource`s as a
Pulumi preview, so both are priced by one mapping (`projected.map_resource`).

Each `resource_changes[]` entry (managed mode) gives `type`, `name`, `address` and
`change.{actions, before, after}`. The Terraform type is mapped to the Pulumi type token and
its attributes to the Pulumi property names (snake_case to camelCase, a one-element block
list to a mapping), so `aws_instance` with `instance_type` prices as
`aws:ec2/instance:Instance` with `instanceType`. Actions: `["create"]`, `["update"]`,
`["delete"]`, `["no-op"]` (same), `["read"]` (skipped), `["delete","create"]` and
`["create","delete"]` (replace).
"""

from __future__ import annotations

from typing import Any

from services.pricing.projected import PlanResource, map_resource, provider_of, tags_of

#: Terraform resource type -> Pulumi type token (the mapping `map_resource` knows)
TF_TYPES: dict[str, str] = {
    "aws_instance": "aws:ec2/instance:Instance",
    "aws_ebs_volume": "aws:ebs/volume:Volume",
    "aws_db_instance": "aws:rds/instance:Instance",
    "aws_s3_bucket": "aws:s3/bucket:Bucket",
    "aws_lb": "aws:lb/loadBalancer:LoadBalancer",
    "aws_alb": "aws:lb/loadBalancer:LoadBalancer",
    "aws_elb": "aws:elb/loadBalancer:LoadBalancer",
    "aws_nat_gateway": "aws:ec2/natGateway:NatGateway",
    "aws_lambda_function": "aws:lambda/function:Function",
    "aws_eks_cluster": "aws:eks/cluster:Cluster",
    "aws_eks_node_group": "aws:eks/nodeGroup:NodeGroup",
    "aws_iam_role": "aws:iam/role:Role",
    "aws_iam_policy": "aws:iam/policy:Policy",
    "aws_iam_role_policy": "aws:iam/rolePolicy:RolePolicy",
    "aws_iam_role_policy_attachment": "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws_iam_instance_profile": "aws:iam/instanceProfile:InstanceProfile",
    "aws_vpc": "aws:ec2/vpc:Vpc",
    "aws_subnet": "aws:ec2/subnet:Subnet",
    "aws_security_group": "aws:ec2/securityGroup:SecurityGroup",
    "aws_security_group_rule": "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws_route_table": "aws:ec2/routeTable:RouteTable",
    "aws_route_table_association": "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws_route": "aws:ec2/route:Route",
    "aws_internet_gateway": "aws:ec2/internetGateway:InternetGateway",
    "aws_key_pair": "aws:ec2/keyPair:KeyPair",
    "aws_launch_template": "aws:ec2/launchTemplate:LaunchTemplate",
    "aws_s3_bucket_policy": "aws:s3/bucketPolicy:BucketPolicy",
    "aws_s3_bucket_public_access_block": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws_lb_target_group": "aws:lb/targetGroup:TargetGroup",
    "aws_lb_listener": "aws:lb/listener:Listener",
    "aws_db_subnet_group": "aws:rds/subnetGroup:SubnetGroup",
    "aws_volume_attachment": "aws:ec2/volumeAttachment:VolumeAttachment",
    "azurerm_linux_virtual_machine": "azure:compute/linuxVirtualMachine:LinuxVirtualMachine",
    "azurerm_windows_virtual_machine": "azure:compute/windowsVirtualMachine:WindowsVirtualMachine",
    "azurerm_managed_disk": "azure:compute/managedDisk:ManagedDisk",
    "azurerm_resource_group": "azure:core/resourceGroup:ResourceGroup",
    "azurerm_virtual_network": "azure:network/virtualNetwork:VirtualNetwork",
    "azurerm_subnet": "azure:network/subnet:Subnet",
    "azurerm_network_interface": "azure:network/networkInterface:NetworkInterface",
    "azurerm_network_security_group": "azure:network/networkSecurityGroup:NetworkSecurityGroup",
    "azurerm_lb": "azure:lb/loadBalancer:LoadBalancer",
    "azurerm_nat_gateway": "azure:network/natGateway:NatGateway",
    "azurerm_storage_account": "azure:storage/account:Account",
    "azurerm_kubernetes_cluster": "azure:containerservice/kubernetesCluster:KubernetesCluster",
    "google_compute_instance": "gcp:compute/instance:Instance",
    "google_compute_disk": "gcp:compute/disk:Disk",
    "google_storage_bucket": "gcp:storage/bucket:Bucket",
    "google_compute_router_nat": "gcp:compute/routerNat:RouterNat",
    "google_compute_forwarding_rule": "gcp:compute/forwardingRule:ForwardingRule",
    "google_compute_global_forwarding_rule": "gcp:compute/globalForwardingRule:GlobalForwardingRule",
    "google_sql_database_instance": "gcp:sql/databaseInstance:DatabaseInstance",
    "google_container_cluster": "gcp:container/cluster:Cluster",
    "google_container_node_pool": "gcp:container/nodePool:NodePool",
    "google_compute_network": "gcp:compute/network:Network",
    "google_compute_subnetwork": "gcp:compute/subnetwork:Subnetwork",
    "google_compute_firewall": "gcp:compute/firewall:Firewall",
    "google_compute_router": "gcp:compute/router:Router",
    "google_service_account": "gcp:serviceaccount/account:Account",
}
#: the reverse: a usage file keyed by Terraform addresses also applies to a Pulumi plan
PULUMI_TO_TF: dict[str, str] = {}
for _tf, _pu in TF_TYPES.items():
    PULUMI_TO_TF.setdefault(_pu, _tf)
PULUMI_TO_TF.update(
    {
        "aws:s3/bucketV2:BucketV2": "aws_s3_bucket",
        "aws:alb/loadBalancer:LoadBalancer": "aws_lb",
        "azure-native:compute:VirtualMachine": "azurerm_linux_virtual_machine",
    }
)

#: attributes whose Pulumi name is not the camelCase of the Terraform one
_RENAMES = {
    "aws_db_instance": {"multi_az": "multiAz"},
    "aws_eks_node_group": {"instance_types": "instanceTypes", "disk_size": "diskSize"},
    "aws_instance": {"ebs_block_device": "ebsBlockDevices"},
    "google_compute_instance": {"guest_accelerator": "guestAccelerators"},
    "azurerm_kubernetes_cluster": {"sku_tier": "skuTier"},
}
#: blocks that stay lists (several entries), not one-element blocks
_LISTS = {"ebs_block_device", "guest_accelerator", "instance_types", "architectures"}
#: values that are maps of user keys, never renamed
_MAPS = {"tags", "tags_all", "labels"}


_TF_PROVIDERS = {"aws": "AWS", "azurerm": "Microsoft", "google": "Google Cloud"}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def to_pulumi_props(tf_type: str, attrs: dict | None) -> dict | None:
    """Terraform attributes as the Pulumi properties of the same resource."""
    if attrs is None:
        return None
    renames = _RENAMES.get(tf_type, {})
    return {renames.get(k) or _camel(k): _value(k, v) for k, v in attrs.items()}


def _value(key: str, value: Any) -> Any:
    if key in _MAPS:
        return value
    if (
        isinstance(value, list)
        and key not in _LISTS
        and len(value) == 1
        and isinstance(value[0], dict)
    ):
        return _block(value[0])
    if isinstance(value, list):
        return [_block(v) if isinstance(v, dict) else v for v in value]
    if isinstance(value, dict):
        return _block(value)
    return value


def _block(value: dict) -> dict:
    return {_camel(k): _value(k, v) for k, v in value.items()}


def _op(actions: list[str]) -> str | None:
    a = list(actions or [])
    if a == ["read"]:
        return None
    if a in (["delete", "create"], ["create", "delete"]):
        return "replace"
    if a == ["no-op"]:
        return "same"
    return a[0] if len(a) == 1 and a[0] in {"create", "update", "delete"} else None


def provider_region(plan: dict, name: str = "aws") -> str | None:
    """The region a provider block configures (`provider "aws" { region = "..." }`)."""
    config = ((plan.get("configuration") or {}).get("provider_config") or {}).get(name) or {}
    region = ((config.get("expressions") or {}).get("region") or {}).get("constant_value")
    if region:
        return region
    for var in (plan.get("variables") or {}).values():  # region = var.region
        if (
            isinstance(var, dict)
            and isinstance(var.get("value"), str)
            and _looks_like_region(var["value"])
        ):
            return var["value"]
    return None


def _looks_like_region(value: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", value))


def plan_resources(plan: dict, *, aws_region: str | None = None, usage=None) -> list[PlanResource]:
    """The managed resources of a `terraform show -json` plan, with their components before
    and after the change (`usage`: a `UsageFile` keyed by address)."""
    if not isinstance(plan, dict) or not isinstance(plan.get("resource_changes"), list):
        raise ValueError(
            "not a `terraform show -json` plan: no resource_changes[] (run `terraform show -json PLANFILE`)"
        )
    region = aws_region or provider_region(plan)
    out: list[PlanResource] = []
    for rc in plan["resource_changes"]:
        if rc.get("mode", "managed") != "managed":
            continue
        change = rc.get("change") or {}
        op = _op(change.get("actions") or [])
        if op is None:
            continue
        tf_type = rc.get("type") or ""
        rtype = TF_TYPES.get(tf_type, tf_type)
        address = rc.get("address") or f"{tf_type}.{rc.get('name')}"
        use = (
            usage.for_resource(
                rtype, rc.get("name") or "", address, address=address, tf_type=tf_type
            )
            if usage is not None
            else {}
        )
        before_props = to_pulumi_props(tf_type, change.get("before")) if op != "create" else None
        after_props = to_pulumi_props(tf_type, change.get("after")) if op != "delete" else None
        if after_props is not None and isinstance(change.get("after_unknown"), dict):
            # values known only after apply are absent, not null
            after_props = {k: v for k, v in after_props.items() if v is not None}
        before = (
            map_resource(rtype, before_props, aws_region=region, usage=use)
            if before_props is not None
            else None
        )
        after = (
            map_resource(rtype, after_props, aws_region=region, usage=use)
            if after_props is not None
            else None
        )
        provider = (
            provider_of(rtype)
            if tf_type in TF_TYPES
            else _TF_PROVIDERS.get(tf_type.split("_", 1)[0], tf_type.split("_", 1)[0])
        )
        out.append(
            PlanResource(
                address,
                rc.get("name") or address,
                tf_type,
                op,
                provider,
                before,
                after,
                address,
                tags_of(after_props if after_props is not None else before_props),
            )
        )
    return out


def is_terraform_plan(doc: Any) -> bool:
    return isinstance(doc, dict) and "resource_changes" in doc and "steps" not in doc
