"""Usage files: the quantities a plan does not hold (GB stored, requests, data processed), in
the shape of Infracost's `infracost-usage.yml`::

    version: 0.1
    resource_type_default_usage:        # optional: every resource of a type
      aws_lambda_function:
        monthly_requests: 100000
        request_duration_ms: 200
    resource_usage:                     # per resource
      aws_s3_bucket.assets:             # a Terraform address, a Pulumi name or URN, or
        standard:                       # TFTYPE.NAME for a Pulumi resource of that type
          storage_gb: 100
      aws_nat_gateway.egress:
        monthly_data_processed_gb: 500

Keys used: `storage_gb` (also `standard.storage_gb`), `monthly_tier_1_requests`,
`monthly_tier_2_requests`, `monthly_data_processed_gb`, `monthly_requests`,
`request_duration_ms`, `new_connections`, `active_connections`, `processed_bytes_gb`,
`rule_evaluations`, `instances` (EKS nodes), `nodes` (GKE nodes).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml


class UsageFile:
    def __init__(self, resource_usage: dict | None = None, defaults: dict | None = None) -> None:
        self.resource_usage = resource_usage or {}
        self.defaults = defaults or {}

    @classmethod
    def load(cls, path: Path) -> UsageFile:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"usage file {path}: {exc}") from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"usage file {path}: expected a mapping with resource_usage")
        unknown = set(data) - {"version", "resource_usage", "resource_type_default_usage"}
        if unknown:
            raise ValueError(
                f"usage file {path}: unknown key(s) {', '.join(sorted(unknown))} "
                "(version, resource_usage, resource_type_default_usage)"
            )
        usage, defaults = (
            data.get("resource_usage") or {},
            data.get("resource_type_default_usage") or {},
        )
        for section, entries in (
            ("resource_usage", usage),
            ("resource_type_default_usage", defaults),
        ):
            if not isinstance(entries, dict):
                raise ValueError(f"usage file {path}: {section} must be a mapping")
            for key, values in entries.items():
                if not isinstance(values, dict):
                    raise ValueError(
                        f"usage file {path}: {section}.{key} must be a mapping of usage keys"
                    )
                _check_numbers(values, f"{section}.{key}", path)
        return cls(usage, defaults)

    def for_resource(
        self,
        rtype: str,
        name: str,
        urn: str,
        *,
        address: str | None = None,
        tf_type: str | None = None,
    ) -> dict:
        from services.pricing.terraform import PULUMI_TO_TF

        tf = tf_type or PULUMI_TO_TF.get(rtype)
        merged: dict = {}
        for key in (rtype, tf):
            if key and key in self.defaults:
                merged.update(self.defaults[key])
        for key in (address, urn, name, f"{tf}.{name}" if tf else None):
            if key and key in self.resource_usage:
                merged.update(self.resource_usage[key])
                break
        return merged


def _check_numbers(values: dict, where: str, path: Path) -> None:
    for k, v in values.items():
        if isinstance(v, dict):
            _check_numbers(v, f"{where}.{k}", path)
            continue
        try:
            number = Decimal(str(v))
        except InvalidOperation:
            raise ValueError(f"usage file {path}: {where}.{k} = {v!r} is not a number") from None
        if not number.is_finite() or number < 0:
            raise ValueError(f"usage file {path}: {where}.{k} must be a non-negative number")
