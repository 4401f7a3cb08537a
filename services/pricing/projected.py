"""Projected monthly cost of an infrastructure plan (`pulumi preview --json` or, through
`services.pricing.terraform`, `terraform show -json`).

`map_resource` (pure) turns one resource state into priced components (an instance's hours,
its root volume's GB-months, a database's storage and IOPS, ...); `plan_resources` reads a
Pulumi preview into `PlanResource`s (old and new state of each resource); `price_resources`
prices the components at 730 hours a month through, in order: pricing plugins, YAML specs,
then the price snapshot (`services.pricing.snapshot`); an amount in another currency than the
prices is converted at one stated exchange rate (`services.pricing.fx`). A resource that
cannot be priced stays in the result, with the reason; a free one is priced at 0 (`free`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.pricing import domain

HOURS_PER_MONTH = Decimal(730)
SKIPPED_OPS = {"read", "refresh", "discard", "remove-pending-replace"}
FREE = "free"

AWS, AZURE, GCP = "AWS", "Microsoft", "Google Cloud"


@dataclass(frozen=True)
class Component:
    """One priced quantity of a resource, per month."""

    provider: str
    service: str
    sku: str | None
    region: str | None
    quantity: Decimal
    unit: str
    label: str = ""


@dataclass
class Mapped:
    components: list[Component] = field(default_factory=list)
    reason: str | None = None  # why nothing could be priced (unknown type, usage-based...)
    free: bool = False  # a resource type that costs nothing by itself (an IAM role, a VPC)
    notes: list[str] = field(default_factory=list)  # usage-based parts left out, defaults assumed


#: resource types that cost nothing by themselves (Pulumi type tokens; Terraform types map to them)
FREE_TYPES = {
    "aws:iam/role:Role",
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/instanceProfile:InstanceProfile",
    "aws:iam/user:User",
    "aws:iam/group:Group",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/route:Route",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/keyPair:KeyPair",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    "aws:lb/targetGroup:TargetGroup",
    "aws:lb/listener:Listener",
    "aws:lb/listenerRule:ListenerRule",
    "aws:lb/targetGroupAttachment:TargetGroupAttachment",
    "aws:rds/subnetGroup:SubnetGroup",
    "aws:rds/parameterGroup:ParameterGroup",
    "aws:ebs/volumeAttachment:VolumeAttachment",
    "aws:ec2/volumeAttachment:VolumeAttachment",
    "aws:lambda/permission:Permission",
    "azure-native:resources:ResourceGroup",
    "azure:core/resourceGroup:ResourceGroup",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:NetworkInterface",
    "azure:network/virtualNetwork:VirtualNetwork",
    "azure:network/subnet:Subnet",
    "azure:network/networkSecurityGroup:NetworkSecurityGroup",
    "azure:network/networkInterface:NetworkInterface",
    "azure:authorization/assignment:Assignment",
    "azure-native:authorization:RoleAssignment",
    "gcp:compute/network:Network",
    "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/firewall:Firewall",
    "gcp:compute/router:Router",
    "gcp:serviceaccount/account:Account",
    "gcp:projects/iAMMember:IAMMember",
    "gcp:projects/iAMBinding:IAMBinding",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
}


def _region_from_zone(zone: str | None) -> str | None:
    if not zone:
        return None
    if re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d[a-z]", zone):  # AWS us-east-1a
        return zone[:-1]
    if re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", zone):  # GCP us-central1-a
        return zone.rsplit("-", 1)[0]
    return zone


def _arn_region(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" and parts[3] else None


def _aws_region(props: dict, default: str | None) -> str | None:
    return (
        props.get("region")
        or _region_from_zone(props.get("availabilityZone"))
        or _arn_region(props.get("arn"))
        or default
    )


def _azure_region(props: dict) -> str | None:
    loc = props.get("location")
    return re.sub(r"\s+", "", loc).lower() if isinstance(loc, str) and loc else None


def _hours(provider, service, sku, region, label="", count: Decimal | int = 1) -> Component:
    return Component(provider, service, sku, region, HOURS_PER_MONTH * Decimal(count), "Hrs", label)


def _dec(value: Any, default: str = "0") -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(default)
    except Exception:  # noqa: BLE001
        return Decimal(default)


def _first(value: Any) -> dict:
    """A nested block: Pulumi gives a mapping, Terraform a one-element list."""
    if isinstance(value, list):
        value = value[0] if value else {}
    return value if isinstance(value, dict) else {}


def _use(usage: dict, *keys: str) -> Decimal | None:
    """A usage value (`storage_gb`, or nested `standard.storage_gb`), None when absent."""
    for key in keys:
        node: Any = usage
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, ""):
            return _dec(node)
    return None


# ---------------------------------------------------------------- AWS
def _ebs(
    vtype: str,
    size: Decimal,
    region: str | None,
    label: str,
    iops: Any = None,
    throughput: Any = None,
) -> list[Component]:
    vtype = (vtype or "gp2").lower()
    out = [Component(AWS, "AmazonEBS", vtype, region, size, "GB-Mo", label)]
    if vtype == "gp3":
        extra_iops, extra_tp = _dec(iops) - 3000, _dec(throughput) - 125
        if extra_iops > 0:
            out.append(
                Component(
                    AWS,
                    "AmazonEBS",
                    "gp3-iops",
                    region,
                    extra_iops,
                    "IOPS-Mo",
                    f"{label} IOPS above 3,000",
                )
            )
        if extra_tp > 0:
            out.append(
                Component(
                    AWS,
                    "AmazonEBS",
                    "gp3-throughput",
                    region,
                    extra_tp,
                    "MiBps-Mo",
                    f"{label} throughput above 125 MiB/s",
                )
            )
    elif vtype in {"io1", "io2"} and _dec(iops) > 0:
        out.append(
            Component(
                AWS,
                "AmazonEBS",
                f"{vtype}-iops",
                region,
                _dec(iops),
                "IOPS-Mo",
                f"{label} provisioned IOPS",
            )
        )
    return out


def _aws_instance(props: dict, region: str | None) -> Mapped:
    itype = props.get("instanceType")
    if not itype:
        return Mapped(reason="instanceType is unknown")
    if (props.get("tenancy") or "default") not in {"default", "shared"}:
        return Mapped(
            reason=f"{props['tenancy']} tenancy is not in the price data (shared tenancy only)"
        )
    out = [_hours(AWS, "AmazonEC2", itype, region, "instance hours")]
    notes = []
    root = _first(props.get("rootBlockDevice"))
    if root.get("volumeSize"):
        out += _ebs(
            root.get("volumeType") or "gp2",
            _dec(root["volumeSize"]),
            region,
            "root volume",
            root.get("iops"),
            root.get("throughput"),
        )
    else:
        out += _ebs(root.get("volumeType") or "gp2", Decimal(8), region, "root volume")
        notes.append("root volume size not in the plan: 8 GB assumed (the usual AMI size)")
    for dev in props.get("ebsBlockDevices") or []:
        if isinstance(dev, dict) and dev.get("volumeSize"):
            name = dev.get("deviceName") or "volume"
            out += _ebs(
                dev.get("volumeType") or "gp2",
                _dec(dev["volumeSize"]),
                region,
                f"attached volume {name}",
                dev.get("iops"),
                dev.get("throughput"),
            )
    return Mapped(out, notes=notes)


def _aws_rds(props: dict, region: str | None) -> Mapped:
    cls = props.get("instanceClass")
    if not cls:
        return Mapped(reason="instanceClass is unknown")
    engine = (props.get("engine") or "mysql").lower()
    engine = "postgresql" if engine.startswith("postgres") else engine
    if engine.startswith("aurora"):
        return Mapped(
            reason=f"{engine} instances are priced with their cluster, which is not in the price data"
        )
    if engine not in {"postgresql", "mysql", "mariadb"}:
        return Mapped(
            reason=f"RDS engine {engine} is not in the price data (postgresql, mysql, mariadb)"
        )
    multi = ":multi-az" if props.get("multiAz") else ""
    az_label = " (Multi-AZ)" if multi else ""
    out = [
        _hours(
            AWS, "AmazonRDS", f"{cls}:{engine}{multi}", region, f"{engine} instance hours{az_label}"
        )
    ]
    storage = _dec(props.get("allocatedStorage"))
    iops = _dec(props.get("iops"))
    stype = (props.get("storageType") or ("io1" if iops > 0 else "gp2")).lower()
    if storage > 0:
        out.append(
            Component(
                AWS,
                "AmazonRDS",
                f"storage:{stype}{multi}",
                region,
                storage,
                "GB-Mo",
                f"database storage ({stype}){az_label}",
            )
        )
    if stype in {"io1", "io2"} and iops > 0:
        out.append(
            Component(
                AWS,
                "AmazonRDS",
                f"iops:io1{multi}",
                region,
                iops,
                "IOPS-Mo",
                f"provisioned IOPS{az_label}",
            )
        )
    elif stype == "gp3" and iops > 0:
        included = Decimal(12000) if storage >= 400 else Decimal(3000)
        if iops > included:
            out.append(
                Component(
                    AWS,
                    "AmazonRDS",
                    f"iops:gp3{multi}",
                    region,
                    iops - included,
                    "IOPS-Mo",
                    f"IOPS above the {included:,} included{az_label}",
                )
            )
    return Mapped(out)


def _aws(rtype: str, props: dict, region: str | None, usage: dict) -> Mapped | None:  # noqa: C901 - one branch per AWS resource type mapped to a price
    tags = props.get("tags") or {}
    if rtype == "aws:ec2/instance:Instance":
        return _aws_instance(props, region)
    if rtype == "aws:ebs/volume:Volume":
        if not props.get("size"):
            return Mapped(
                reason="size is unknown (a volume made from a snapshot: set size to price it)"
            )
        return Mapped(
            _ebs(
                props.get("type") or "gp2",
                _dec(props["size"]),
                region,
                "volume storage",
                props.get("iops"),
                props.get("throughput"),
            )
        )
    if rtype == "aws:rds/instance:Instance":
        return _aws_rds(props, region)
    if rtype in {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2", "aws:s3/bucketV2:Bucket"}:
        gb = _use(usage, "standard.storage_gb", "storage_gb")
        if gb is None and tags.get("finfocus:storage-gb") is not None:
            gb = _dec(tags["finfocus:storage-gb"])
        if gb is None:
            return Mapped(
                reason="usage-based (storage): give standard.storage_gb in the usage file (or tag finfocus:storage-gb)"
            )
        out = [Component(AWS, "AmazonS3", "standard", region, gb, "GB-Mo", "standard storage")]
        for key, tier, label in (
            ("monthly_tier_1_requests", "tier1", "PUT, COPY, POST, LIST requests"),
            ("monthly_tier_2_requests", "tier2", "GET and other requests"),
        ):
            n = _use(usage, f"standard.{key}", key)
            if n:
                out.append(
                    Component(AWS, "AmazonS3", f"requests:{tier}", region, n, "Requests", label)
                )
        return Mapped(out)
    if rtype in {"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"}:
        kind = (props.get("loadBalancerType") or "application").lower()
        if kind not in {"application", "network"}:
            return Mapped(reason=f"{kind} load balancers are not in the price data")
        out = [_hours(AWS, "AWSELB", kind, region, f"{kind} load balancer hours")]
        lcu = _lcu(usage, kind)
        notes = []
        if lcu is None:
            notes.append(
                "capacity units are usage-based: give processed_bytes_gb / new_connections in the usage file"
            )
        elif lcu > 0:
            out.append(
                Component(
                    AWS,
                    "AWSELB",
                    f"{kind}-lcu",
                    region,
                    lcu * HOURS_PER_MONTH,
                    "LCU-Hrs",
                    "capacity unit hours",
                )
            )
        return Mapped(out, notes=notes)
    if rtype == "aws:elb/loadBalancer:LoadBalancer":
        return Mapped([_hours(AWS, "AWSELB", "classic", region, "classic load balancer hours")])
    if rtype == "aws:ec2/natGateway:NatGateway":
        out = [_hours(AWS, "AmazonVPC", "natgateway", region, "NAT gateway hours")]
        gb = _use(usage, "monthly_data_processed_gb")
        if gb:
            out.append(
                Component(AWS, "AmazonVPC", "natgateway-bytes", region, gb, "GB", "data processed")
            )
        return Mapped(
            out,
            notes=[]
            if gb is not None
            else [
                "data processed is usage-based: give monthly_data_processed_gb in the usage file"
            ],
        )
    if rtype == "aws:lambda/function:Function":
        requests = _use(usage, "monthly_requests")
        duration_ms = _use(usage, "request_duration_ms")
        if requests is None or duration_ms is None:
            return Mapped(
                reason="usage-based (serverless): give monthly_requests and request_duration_ms in the usage file"
            )
        memory_gb = _dec(props.get("memorySize"), "128") / 1024
        arm = "arm64" in (props.get("architectures") or [])
        gb_seconds = requests * duration_ms / 1000 * memory_gb
        return Mapped(
            [
                Component(AWS, "AWSLambda", "requests", region, requests, "Requests", "requests"),
                Component(
                    AWS,
                    "AWSLambda",
                    "duration-arm" if arm else "duration",
                    region,
                    gb_seconds,
                    "GB-Seconds",
                    "duration (GB-seconds)",
                ),
            ]
        )
    if rtype == "aws:eks/cluster:Cluster":
        return Mapped([_hours(AWS, "AmazonEKS", "cluster", region, "EKS cluster hours")])
    if rtype == "aws:eks/nodeGroup:NodeGroup":
        scaling = _first(props.get("scalingConfig"))
        nodes = _dec(_use(usage, "instances") or scaling.get("desiredSize"), "1")
        itype = (props.get("instanceTypes") or ["t3.medium"])[0]
        disk = _dec(props.get("diskSize"), "20")
        return Mapped(
            [
                _hours(AWS, "AmazonEC2", itype, region, f"{nodes} node(s) instance hours", nodes),
                Component(AWS, "AmazonEBS", "gp2", region, disk * nodes, "GB-Mo", "node disks"),
            ]
        )
    return None


def _lcu(usage: dict, kind: str) -> Decimal | None:
    """Average capacity units of a load balancer from Infracost-style usage keys."""
    keys = ("new_connections", "active_connections", "processed_bytes_gb", "rule_evaluations")
    values = {k: _use(usage, k) for k in keys}
    if all(v is None for v in values.values()):
        return None
    v = {k: x or Decimal(0) for k, x in values.items()}
    if kind == "network":
        return max(
            v["new_connections"] / 800, v["active_connections"] / 100000, v["processed_bytes_gb"]
        )
    return max(
        v["new_connections"] / 25,
        v["active_connections"] / 3000,
        v["processed_bytes_gb"],
        v["rule_evaluations"] / 1000,
    )


# ---------------------------------------------------------------- Azure
_AZURE_TIERS = [
    (4, 32),
    (6, 64),
    (10, 128),
    (15, 256),
    (20, 512),
    (30, 1024),
    (40, 2048),
    (50, 4096),
]
_AZURE_DISK_PREFIX = {
    "premium_lrs": ("Premium_LRS", "P"),
    "standardssd_lrs": ("StandardSSD_LRS", "E"),
    "standard_lrs": ("Standard_LRS", "S"),
}


def _azure_disk(account: str | None, size: Any, region: str | None, label: str) -> Component | str:
    kind = _AZURE_DISK_PREFIX.get((account or "Standard_LRS").lower())
    if kind is None:
        return f"{account} disks are not in the price data (Premium_LRS, StandardSSD_LRS, Standard_LRS)"
    gb = _dec(size)
    if gb <= 0:
        return f"{label}: diskSizeGB is unknown"
    tier = next((f"{kind[1]}{t}" for t, cap in _AZURE_TIERS if gb <= cap), None)
    if tier is None:
        return f"{label}: {gb} GiB is above the largest tier in the price data"
    return Component(
        AZURE,
        "Storage",
        f"{kind[0]}:{tier}",
        region,
        Decimal(1),
        "Mo",
        f"{label} ({tier}, {gb} GiB)",
    )


def _azure_vm(
    size: str | None, region: str | None, os_disk: dict, windows: bool, size_key: str
) -> Mapped:
    if not size:
        return Mapped(reason=f"{size_key} is unknown")
    if windows:
        return Mapped(reason="Windows VM prices (with licence) are not in the price data")
    out: list[Component] = [_hours(AZURE, "Virtual Machines", size, region, "VM hours")]
    notes = []
    account = os_disk.get("storageAccountType") or _first(os_disk.get("managedDisk")).get(
        "storageAccountType"
    )
    disk_size = os_disk.get("diskSizeGb") or os_disk.get("diskSizeGB")
    if account or disk_size:
        disk = _azure_disk(account or "Standard_LRS", disk_size or 30, region, "OS disk")
        if isinstance(disk, str):
            return Mapped(reason=disk)
        out.append(disk)
        if not disk_size:
            notes.append("OS disk size not in the plan: 30 GiB assumed (the usual Linux image)")
    else:
        notes.append("no OS disk in the plan: its disk is not included")
    return Mapped(out, notes=notes)


def _azure(rtype: str, props: dict, usage: dict) -> Mapped | None:
    region = _azure_region(props)
    if rtype.startswith("azure-native:compute") and rtype.endswith(":VirtualMachine"):
        storage = props.get("storageProfile") or {}
        os_disk = storage.get("osDisk") or {}
        windows = (os_disk.get("osType") or "").lower() == "windows" or bool(
            (props.get("osProfile") or {}).get("windowsConfiguration")
        )
        return _azure_vm(
            (props.get("hardwareProfile") or {}).get("vmSize"),
            region,
            os_disk,
            windows,
            "hardwareProfile.vmSize",
        )
    if rtype == "azure:compute/linuxVirtualMachine:LinuxVirtualMachine":
        return _azure_vm(props.get("size"), region, _first(props.get("osDisk")), False, "size")
    if rtype == "azure:compute/windowsVirtualMachine:WindowsVirtualMachine":
        return Mapped(reason="Windows VM prices (with licence) are not in the price data")
    if rtype.startswith("azure-native:compute") and rtype.endswith(":Disk"):
        disk = _azure_disk(
            (props.get("sku") or {}).get("name"), props.get("diskSizeGB"), region, "managed disk"
        )
        return Mapped(reason=disk) if isinstance(disk, str) else Mapped([disk])
    if rtype == "azure:compute/managedDisk:ManagedDisk":
        disk = _azure_disk(
            props.get("storageAccountType"), props.get("diskSizeGb"), region, "managed disk"
        )
        return Mapped(reason=disk) if isinstance(disk, str) else Mapped([disk])
    if rtype in {"azure-native:network:LoadBalancer", "azure:lb/loadBalancer:LoadBalancer"}:
        sku = props.get("sku")
        sku = (sku.get("name") if isinstance(sku, dict) else sku) or "Basic"
        if sku.lower() == "basic":
            return Mapped(free=True, notes=["Basic load balancers have no charge"])
        return Mapped(
            [
                _hours(
                    AZURE,
                    "Load Balancer",
                    "standard",
                    region,
                    "standard load balancer hours (first 5 rules)",
                )
            ]
        )
    if rtype in {"azure-native:network:NatGateway", "azure:network/natGateway:NatGateway"}:
        out = [_hours(AZURE, "NAT Gateway", "gateway", region, "NAT gateway hours")]
        gb = _use(usage, "monthly_data_processed_gb")
        if gb:
            out.append(
                Component(
                    AZURE, "NAT Gateway", "data-processed", region, gb, "GB", "data processed"
                )
            )
        return Mapped(out)
    if rtype in {"azure-native:storage:StorageAccount", "azure:storage/account:Account"}:
        gb = _use(usage, "storage_gb")
        if gb is None:
            return Mapped(reason="usage-based (storage): give storage_gb in the usage file")
        return Mapped(
            [
                Component(
                    AZURE, "Storage", "blob:hot-lrs", region, gb, "GB-Mo", "hot LRS blob storage"
                )
            ]
        )
    if rtype in {
        "azure-native:containerservice:ManagedCluster",
        "azure:containerservice/kubernetesCluster:KubernetesCluster",
    }:
        tier = (
            (props.get("sku") or {}).get("tier")
            if isinstance(props.get("sku"), dict)
            else props.get("skuTier")
        ) or "Free"
        out = (
            [_hours(AZURE, "Azure Kubernetes Service", "standard", region, "cluster uptime SLA")]
            if tier.lower() == "standard"
            else []
        )
        pools = props.get("agentPoolProfiles") or (
            [_first(props.get("defaultNodePool"))] if props.get("defaultNodePool") else []
        )
        for pool in pools:
            size, count = pool.get("vmSize"), _dec(pool.get("count") or pool.get("nodeCount"), "1")
            if not size:
                return Mapped(reason="a node pool's vmSize is unknown")
            out.append(
                _hours(
                    AZURE,
                    "Virtual Machines",
                    size,
                    region,
                    f"node pool {pool.get('name') or ''} ({count} nodes)".replace("  ", " "),
                    count,
                )
            )
        return (
            Mapped(out)
            if out
            else Mapped(free=True, notes=["Free tier cluster without node pools in the plan"])
        )
    return None


# ---------------------------------------------------------------- GCP
def _gcp(rtype: str, props: dict, usage: dict) -> Mapped | None:
    region = _region_from_zone(props.get("zone")) or (props.get("region") or None)
    if rtype == "gcp:compute/instance:Instance":
        if not props.get("machineType"):
            return Mapped(reason="machineType is unknown")
        out = [_hours(GCP, "Compute Engine", props["machineType"], region, "instance hours")]
        boot = _first(props.get("bootDisk"))
        if boot:
            params = _first(boot.get("initializeParams"))
            out.append(
                Component(
                    GCP,
                    "Compute Engine",
                    params.get("type") or "pd-standard",
                    region,
                    _dec(params.get("size"), "10"),
                    "GB-Mo",
                    "boot disk",
                )
            )
        for acc in props.get("guestAccelerators") or []:
            kind = (acc.get("type") or "").rsplit("/", 1)[-1]
            out.append(
                _hours(
                    GCP,
                    "Compute Engine",
                    f"gpu:{kind}",
                    region,
                    f"{kind} GPU hours",
                    _dec(acc.get("count"), "1"),
                )
            )
        return Mapped(out)
    if rtype == "gcp:compute/disk:Disk":
        return Mapped(
            [
                Component(
                    GCP,
                    "Compute Engine",
                    props.get("type") or "pd-standard",
                    region,
                    _dec(props.get("size"), "10"),
                    "GB-Mo",
                    "persistent disk",
                )
            ]
        )
    if rtype == "gcp:storage/bucket:Bucket":
        labels = props.get("labels") or {}
        gb = _use(usage, "storage_gb")
        if gb is None and labels.get("finfocus-storage-gb") is not None:
            gb = _dec(labels["finfocus-storage-gb"])
        if gb is None:
            return Mapped(
                reason="usage-based (storage): give storage_gb in the usage file (or label finfocus-storage-gb)"
            )
        return Mapped(
            [
                Component(
                    GCP,
                    "Cloud Storage",
                    (props.get("storageClass") or "STANDARD").lower(),
                    (props.get("location") or "").lower() or None,
                    gb,
                    "GB-Mo",
                    "storage",
                )
            ]
        )
    if rtype == "gcp:compute/routerNat:RouterNat":
        out = [_hours(GCP, "Networking", "nat-gateway", region, "Cloud NAT gateway hours")]
        gb = _use(usage, "monthly_data_processed_gb")
        if gb:
            out.append(Component(GCP, "Networking", "nat-data", region, gb, "GB", "data processed"))
        return Mapped(out)
    if rtype in {
        "gcp:compute/forwardingRule:ForwardingRule",
        "gcp:compute/globalForwardingRule:GlobalForwardingRule",
    }:
        return Mapped(
            [
                _hours(
                    GCP,
                    "Networking",
                    "forwarding-rule",
                    region or "us-central1",
                    "forwarding rule hours",
                )
            ]
        )
    if rtype == "gcp:sql/databaseInstance:DatabaseInstance":
        return _cloud_sql(props, region)
    if rtype == "gcp:container/cluster:Cluster":
        loc = props.get("location") or ""
        return Mapped(
            [
                _hours(
                    GCP,
                    "Kubernetes Engine",
                    "cluster",
                    _region_from_zone(loc) or loc or None,
                    "cluster management hours",
                )
            ]
        )
    if rtype == "gcp:container/nodePool:NodePool":
        loc = props.get("location") or ""
        node = _first(props.get("nodeConfig"))
        nodes = _dec(
            _use(usage, "nodes") or props.get("nodeCount") or props.get("initialNodeCount"), "1"
        )
        r = _region_from_zone(loc) or loc or None
        return Mapped(
            [
                _hours(
                    GCP,
                    "Compute Engine",
                    node.get("machineType") or "e2-medium",
                    r,
                    f"{nodes} node(s) hours",
                    nodes,
                ),
                Component(
                    GCP,
                    "Compute Engine",
                    node.get("diskType") or "pd-balanced",
                    r,
                    _dec(node.get("diskSizeGb"), "100") * nodes,
                    "GB-Mo",
                    "node boot disks",
                ),
            ]
        )
    return None


def _cloud_sql(props: dict, region: str | None) -> Mapped:
    settings = _first(props.get("settings"))
    tier = (settings.get("tier") or "").lower()
    version = (props.get("databaseVersion") or "").upper()
    if not tier:
        return Mapped(reason="settings.tier is unknown")
    if version.startswith("SQLSERVER"):
        return Mapped(reason="Cloud SQL for SQL Server (licence) is not in the price data")
    if (settings.get("edition") or "ENTERPRISE").upper() != "ENTERPRISE":
        return Mapped(
            reason=f"Cloud SQL {settings['edition']} edition is not in the price data (Enterprise)"
        )
    ha = (settings.get("availabilityType") or "ZONAL").upper() == "REGIONAL"
    suffix, label = (":ha", " (HA)") if ha else ("", "")
    out: list[Component] = []
    if tier in {"db-f1-micro", "db-g1-small"}:
        if ha:
            return Mapped(reason=f"{tier} (shared core) has no high-availability price")
        out.append(_hours(GCP, "Cloud SQL", tier, region, "shared-core instance hours"))
    else:
        m = re.fullmatch(r"db-custom-(\d+)-(\d+)", tier)
        std = re.fullmatch(r"db-n1-(standard|highmem)-(\d+)", tier)
        if m:
            cpus, gib = Decimal(m.group(1)), Decimal(m.group(2)) / 1024
        elif std:
            cpus = Decimal(std.group(2))
            gib = cpus * (Decimal("3.75") if std.group(1) == "standard" else Decimal("6.5"))
        else:
            return Mapped(
                reason=f"Cloud SQL tier {tier} is not in the price data (db-custom-N-M, db-n1-*, shared core)"
            )
        out += [
            Component(
                GCP,
                "Cloud SQL",
                f"cpu{suffix}",
                region,
                cpus * HOURS_PER_MONTH,
                "Hrs",
                f"{cpus} vCPU hours{label}",
            ),
            Component(
                GCP,
                "Cloud SQL",
                f"ram{suffix}",
                region,
                gib * HOURS_PER_MONTH,
                "GiB-Hrs",
                f"{gib.normalize()} GiB memory hours{label}",
            ),
        ]
    disk = "hdd" if (settings.get("diskType") or "PD_SSD").upper() == "PD_HDD" else "ssd"
    out.append(
        Component(
            GCP,
            "Cloud SQL",
            f"storage:{disk}{suffix}",
            region,
            _dec(settings.get("diskSize"), "10"),
            "GB-Mo",
            f"{disk.upper()} storage{label}",
        )
    )
    return Mapped(out)


def map_resource(
    rtype: str, props: dict, *, aws_region: str | None = None, usage: dict | None = None
) -> Mapped:
    """The monthly components of one resource state (inputs merged over outputs); `usage` is
    this resource's entry of the usage file (Infracost's `infracost-usage.yml` keys)."""
    usage = usage or {}
    if rtype in FREE_TYPES:
        return Mapped(free=True)
    prefix = rtype.split(":", 1)[0]
    found = None
    if prefix == "aws":
        found = _aws(rtype, props, _aws_region(props, aws_region), usage)
    elif prefix in {"azure", "azure-native"}:
        found = _azure(rtype, props, usage)
    elif prefix == "gcp":
        found = _gcp(rtype, props, usage)
    return found or Mapped(reason=f"no cost mapping for {rtype} (not supported yet)")


def provider_of(rtype: str) -> str:
    prefix = rtype.split(":", 1)[0]
    return {
        "aws": AWS,
        "azure": AZURE,
        "azure-native": AZURE,
        "gcp": GCP,
        "google-native": GCP,
    }.get(prefix, prefix)


@dataclass
class PlanResource:
    urn: str
    name: str
    type: str
    op: str
    provider: str
    before: Mapped | None
    after: Mapped | None
    address: str = ""  # Terraform address, or the Pulumi name
    tags: dict = field(default_factory=dict)


def _props(state: dict | None) -> dict | None:
    if not state:
        return None
    return {**(state.get("outputs") or {}), **(state.get("inputs") or {})}


def _is_custom(step: dict, state: dict | None, rtype: str) -> bool:
    if rtype.startswith("pulumi:providers:") or rtype == "pulumi:pulumi:Stack":
        return False
    if state is not None and "custom" in state:
        return bool(state["custom"])
    return "/" in rtype.split(":")[1] if rtype.count(":") >= 2 else False


def tags_of(props: dict | None) -> dict:
    if not props:
        return {}
    tags = props.get("tags") or props.get("labels") or {}
    return (
        {str(k): "" if v is None else str(v) for k, v in tags.items()}
        if isinstance(tags, dict)
        else {}
    )


def plan_resources(plan: dict, *, aws_region: str | None = None, usage=None) -> list[PlanResource]:
    """The plan's custom resources, with the components before and after the change.
    `usage` is a `UsageFile` (or None)."""
    if not isinstance(plan, dict) or not isinstance(plan.get("steps"), list):
        raise ValueError("not a `pulumi preview --json` document: no steps[]")
    out: list[PlanResource] = []
    seen: dict[str, int] = {}
    # a replacement shows as replace + create-replacement + delete-replaced: one resource
    replaced = {s.get("urn") for s in plan["steps"] if s.get("op") == "replace"}
    for step in plan["steps"]:
        op = step.get("op", "")
        if op in SKIPPED_OPS or (
            op in {"create-replacement", "delete-replaced"} and step.get("urn") in replaced
        ):
            continue
        old, new = step.get("oldState"), step.get("newState")
        state = new or old or {}
        urn = step.get("urn") or state.get("urn") or ""
        rtype = state.get("type") or (urn.split("::")[-2] if urn.count("::") >= 3 else "")
        if not _is_custom(step, state, rtype):
            continue
        name = urn.rsplit("::", 1)[-1]
        use = usage.for_resource(rtype, name, urn) if usage is not None else {}
        old_props = _props(old) if op not in {"create", "create-replacement"} else None
        new_props = _props(new) if op not in {"delete", "delete-replaced"} else None
        before = (
            map_resource(rtype, old_props, aws_region=aws_region, usage=use)
            if old_props is not None
            else None
        )
        after = (
            map_resource(rtype, new_props, aws_region=aws_region, usage=use)
            if new_props is not None
            else None
        )
        if op in {"create-replacement", "delete-replaced"}:
            before = before if op == "delete-replaced" else None
            after = after if op == "create-replacement" else None
        if op in {"create-replacement", "delete-replaced"} and urn in seen:
            merged = out[seen[urn]]
            if op == "create-replacement":
                merged.after = after
                merged.tags = tags_of(new_props)
            else:
                merged.before = before
            merged.op = "replace"
            continue
        seen[urn] = len(out)
        out.append(
            PlanResource(
                urn,
                name,
                rtype,
                op,
                provider_of(rtype),
                before,
                after,
                name,
                tags_of(new_props if new_props is not None else old_props),
            )
        )
    return out


QuoteFn = Callable[[Sequence[domain.UsageLine]], Awaitable[list[list[domain.Quote | None]]]]


@dataclass
class PricedComponent:
    component: Component
    decision: domain.PriceDecision
    fx: bool = False  # priced in the snapshot's currency and converted


def _line(c: Component, currency: str) -> domain.UsageLine:
    return domain.UsageLine(
        provider=c.provider,
        service=c.service,
        currency=currency,
        quantity=c.quantity,
        unit=c.unit,
        sku=c.sku,
        region=c.region,
    )


async def price_components(
    components: Sequence[Component],
    currency: str,
    specs: domain.SpecBook,
    quotes: QuoteFn | None,
    snapshot=None,
    fx=None,
) -> list[PricedComponent]:
    """Each component priced in `currency`: plugins, specs, then the snapshot; when none has a
    price in `currency` and `fx` (a `services.pricing.fx.Conversion` from the price data's
    currency) is given, the price-data price converted at that one rate."""
    lines = [_line(c, currency) for c in components]
    answers = await quotes(lines) if quotes and lines else [[] for _ in lines]
    out = []
    for c, line, q in zip(components, lines, answers, strict=True):
        decision = domain.decide(line, q, specs)
        converted = False
        if decision.source == domain.NONE and snapshot is not None:
            hit = snapshot.quote(line)
            if hit is not None and hit.currency == currency:
                decision = domain.decide(line, [hit], domain.SpecBook())
            elif (
                hit is not None
                and fx is not None
                and fx.source_currency == hit.currency
                and fx.target == currency
            ):
                unit_price = fx.convert(hit.unit_price)
                decision = domain.decide(
                    line,
                    [domain.Quote(hit.source, unit_price, currency, hit.unit)],
                    domain.SpecBook(),
                )
                converted = True
            elif hit is not None:
                decision = domain.PriceDecision(
                    domain.NONE,
                    None,
                    None,
                    reason=(
                        f"the price data is in {hit.currency}: give an exchange rate to {currency} (fx import, --fx-rates)"
                    ),
                )
        out.append(PricedComponent(c, decision, converted))
    return out


def _side(
    mapped: Mapped | None, priced: dict[Component, PricedComponent]
) -> tuple[Decimal | None, list[PricedComponent], str | None]:
    """(monthly cost or None when unpriced, components, reason)."""
    if mapped is None:
        return Decimal(0), [], None
    if mapped.free:
        return Decimal(0), [], None
    if not mapped.components:
        return None, [], mapped.reason
    parts = [priced[c] for c in mapped.components]
    missing = [p for p in parts if p.decision.source == domain.NONE]
    if missing:
        return (
            None,
            parts,
            "; ".join(
                f"{p.component.label} ({p.component.sku or '?'} in {p.component.region or 'any region'}): {p.decision.reason}"
                for p in missing
            ),
        )
    # every part left is priced (source is not `none`), so each has a billed cost
    return (
        sum(
            (p.decision.billed_cost for p in parts if p.decision.billed_cost is not None),
            Decimal(0),
        ),
        parts,
        None,
    )


def _source(parts: list[PricedComponent], free: bool) -> str:
    sources = sorted({p.decision.source for p in parts})
    return ",".join(sources) if sources else (FREE if free else domain.NONE)


def money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


async def price_plan(
    plan: dict,
    *,
    specs: domain.SpecBook,
    quotes: QuoteFn | None,
    currency: str = "USD",
    aws_region: str | None = None,
    snapshot=None,
    fx=None,
    usage=None,
) -> dict:
    """The projected-cost document of a Pulumi preview: `{"summary": {...}, "resources": [...]}`."""
    config = plan.get("config") if isinstance(plan, dict) else None
    aws_region = aws_region or (config or {}).get("aws:region")
    resources = plan_resources(plan, aws_region=aws_region, usage=usage)
    return await price_resources(
        resources,
        specs=specs,
        quotes=quotes,
        currency=currency,
        snapshot=snapshot,
        fx=fx,
        plan_format="pulumi",
    )


async def price_resources(
    resources: list[PlanResource],
    *,
    specs: domain.SpecBook,
    quotes: QuoteFn | None,
    currency: str = "USD",
    snapshot=None,
    fx=None,
    plan_format: str = "pulumi",
) -> dict:
    unique: dict[Component, None] = {}
    for r in resources:
        for m in (r.before, r.after):
            for c in m.components if m else []:
                unique.setdefault(c)
    priced_list = await price_components(list(unique), currency, specs, quotes, snapshot, fx)
    priced = {p.component: p for p in priced_list}

    rows: list[dict] = []
    total = before_total = Decimal(0)
    by_provider: dict[str, Decimal] = {}
    by_service: dict[str, Decimal] = {}
    unpriced: list[str] = []
    used_sources: set[str] = set()
    for r in resources:
        after_cost, after_parts, after_reason = _side(r.after, priced)
        before_cost, before_parts, before_reason = _side(r.before, priced)
        parts = after_parts or before_parts
        reason = after_reason or before_reason
        priced_ok = reason is None
        if not priced_ok:
            unpriced.append(r.address or r.name)
        mapped = r.after or r.before
        free = bool(mapped and mapped.free)
        first = parts[0].component if parts else None
        notes = mapped.notes if mapped else []
        row: dict[str, Any] = {
            "urn": r.urn,
            "name": r.name,
            "address": r.address or r.name,
            "type": r.type,
            "op": r.op,
            "provider": r.provider,
            "service": first.service if first else None,
            "sku": first.sku if first else None,
            "region": first.region if first else None,
            "monthly": money(after_cost) if r.after is not None else "0",
            "before": money(before_cost) if r.before is not None else "0",
            "delta": money(after_cost - before_cost)
            if priced_ok and after_cost is not None and before_cost is not None
            else None,
            "currency": currency,
            "priceSource": _source(parts, free) if priced_ok else domain.NONE,
            "tags": r.tags,
            "components": [
                {
                    "label": p.component.label,
                    "service": p.component.service,
                    "sku": p.component.sku,
                    "region": p.component.region,
                    "quantity": money(p.component.quantity),
                    "unit": p.component.unit,
                    "unitPrice": money(p.decision.unit_price),
                    "monthly": money(p.decision.billed_cost),
                    "priceSource": p.decision.source,
                    **({"converted": True} if p.fx else {}),
                }
                for p in (after_parts or []) + ([] if after_parts else before_parts)
            ],
        }
        if notes:
            row["notes"] = notes
        if reason:
            row["reason"] = reason
        rows.append(row)
        used_sources.update(p.decision.source for p in parts if p.decision.source != domain.NONE)
        if after_cost is not None and priced_ok:
            total += after_cost
            by_provider[r.provider] = by_provider.get(r.provider, Decimal(0)) + after_cost
            if row["service"]:
                by_service[row["service"]] = by_service.get(row["service"], Decimal(0)) + after_cost
        if before_cost is not None and priced_ok:
            before_total += before_cost
    summary: dict[str, Any] = {
        "totalMonthly": money(total),
        "currency": currency,
        "before": money(before_total),
        "delta": money(total - before_total),
        "byProvider": {k: money(v) for k, v in sorted(by_provider.items())},
        "byService": {k: money(v) for k, v in sorted(by_service.items())},
        "resources": len(rows),
        "unpriced": len(unpriced),
        "unpricedResources": unpriced,
        "hoursPerMonth": int(HOURS_PER_MONTH),
        "planFormat": plan_format,
    }
    if snapshot is not None:
        summary["priceData"] = [
            i.public() for i in snapshot.infos if f"snapshot:{i.cloud}" in used_sources
        ]
    if fx is not None:
        summary["exchangeRate"] = fx.public()
    return {"summary": summary, "resources": rows}


def compare_to_base(doc: dict, base: dict) -> dict:
    """`doc` with the difference against the projected cost of a base plan (the main branch):
    per resource `baseMonthly` and `baseDelta` (matched by address), and in the summary
    `base` = {totalMonthly, delta, added, removed}. Both documents must be in one currency."""
    if doc["summary"]["currency"] != base["summary"]["currency"]:
        raise ValueError(
            f"the base plan is priced in {base['summary']['currency']}, this one in {doc['summary']['currency']}"
        )
    base_rows = {r["address"]: r for r in base["resources"]}
    seen = set()
    for row in doc["resources"]:
        other = base_rows.get(row["address"])
        seen.add(row["address"])
        row["baseMonthly"] = other["monthly"] if other else "0"
        row["baseDelta"] = (
            money(Decimal(row["monthly"]) - Decimal(row["baseMonthly"]))
            if row["monthly"] is not None and row["baseMonthly"] is not None
            else None
        )
    total, base_total = (
        Decimal(doc["summary"]["totalMonthly"]),
        Decimal(base["summary"]["totalMonthly"]),
    )
    doc["summary"]["base"] = {
        "totalMonthly": money(base_total),
        "delta": money(total - base_total),
        "deltaPercent": money((total - base_total) / base_total * 100) if base_total else None,
        "added": sorted(a for a in (r["address"] for r in doc["resources"]) if a not in base_rows),
        "removed": sorted(a for a in base_rows if a not in seen),
        "unpriced": base["summary"]["unpriced"],
    }
    return doc
