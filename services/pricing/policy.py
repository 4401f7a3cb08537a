"""Cost policies for `cost projected --policy FILE` (and the `--budget` gate): pure checks of a
projected-cost document, one violation per broken rule with its reason.

A policy file (YAML; unknown keys are errors)::

    max_monthly: "2500"              # the plan's monthly total may not exceed this
    max_increase: "200"              # nor grow by more than this vs the base plan ...
    max_increase_percent: "10"       # ... or by more than this percentage
    resource_caps:                   # per resource; `type` and/or `name` (fnmatch patterns)
      - {type: "aws:ec2/instance:Instance", max_monthly: "300"}
      - {type: "aws_db_instance", max_monthly: "800"}
      - {name: "db*", max_monthly: "1000"}
    required_tags: [owner, cost-center]   # every priced, created or updated resource
    allow_unpriced: false            # true: a resource without a price does not fail the gate

Amounts are in the currency the plan is priced in (`--currency`). The increase is against the
base plan when one is given (`--compare-to`), else the plan's own before/after. Unpriced
resources always fail a gate (budget or policy) unless `allow_unpriced` or `--allow-unpriced`:
a cost that cannot be computed is never taken as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: exit codes of a gated `cost projected`
EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2


def _money(value: object) -> object:
    if isinstance(value, float):
        return repr(value)
    return value


class ResourceCap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str | None = Field(
        None, description="resource type pattern (Pulumi token or Terraform type)"
    )
    name: str | None = Field(None, description="resource name or address pattern")
    max_monthly: Decimal

    _m = field_validator("max_monthly", mode="before")(classmethod(lambda cls, v: _money(v)))

    @model_validator(mode="after")
    def _some_match(self) -> ResourceCap:
        if not self.type and not self.name:
            raise ValueError("a resource cap needs a type or a name pattern")
        if not self.max_monthly.is_finite() or self.max_monthly < 0:
            raise ValueError("max_monthly must be a non-negative amount")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_monthly: Decimal | None = None
    max_increase: Decimal | None = None
    max_increase_percent: Decimal | None = None
    resource_caps: list[ResourceCap] = Field(default_factory=list)
    required_tags: list[str] = Field(default_factory=list)
    allow_unpriced: bool = False

    _m = field_validator("max_monthly", "max_increase", "max_increase_percent", mode="before")(
        classmethod(lambda cls, v: _money(v))
    )

    @field_validator("max_monthly", "max_increase", "max_increase_percent")
    @classmethod
    def _finite(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (not value.is_finite() or value < 0):
            raise ValueError("must be a non-negative amount")
        return value


def load_policy(path: Path) -> Policy:
    try:
        data = yaml.safe_load(Path(path).read_text())
        return Policy.model_validate(data or {})
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ValueError(f"policy {path}: {reasons}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"policy {path}: {exc}") from None


@dataclass(frozen=True)
class Violation:
    rule: str
    reason: str
    resource: str | None = None

    def public(self) -> dict:
        return {
            "rule": self.rule,
            "reason": self.reason,
            **({"resource": self.resource} if self.resource else {}),
        }


def _c(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), ",f")


def evaluate(doc: dict, policy: Policy, *, allow_unpriced: bool = False) -> list[Violation]:  # noqa: C901 - one branch per policy rule
    """Every rule `doc` breaks, in a stable order (unpriced first: it makes the rest unsure)."""
    s = doc["summary"]
    cur = s["currency"]
    out: list[Violation] = []
    if not (allow_unpriced or policy.allow_unpriced):
        for row in doc["resources"]:
            if row["priceSource"] == "none":
                out.append(
                    Violation(
                        "unpriced",
                        f"{row['address']} ({row['type']}) has no price: {row.get('reason', '')}"
                        " (--allow-unpriced to let it pass)",
                        row["address"],
                    )
                )
    total = Decimal(s["totalMonthly"])
    if policy.max_monthly is not None and total > policy.max_monthly:
        out.append(
            Violation(
                "max_monthly",
                f"monthly total {_c(total)} {cur} exceeds {_c(policy.max_monthly)} {cur}",
            )
        )
    base = s.get("base")
    before = Decimal(base["totalMonthly"]) if base else Decimal(s["before"])
    against = "the base plan" if base else "the current state"
    increase = total - before
    if policy.max_increase is not None and increase > policy.max_increase:
        out.append(
            Violation(
                "max_increase",
                f"monthly cost grows by {_c(increase)} {cur} vs {against} "
                f"({_c(before)} -> {_c(total)}), more than {_c(policy.max_increase)} {cur}",
            )
        )
    if policy.max_increase_percent is not None and increase > 0:
        if before == 0:
            out.append(
                Violation(
                    "max_increase_percent",
                    f"monthly cost grows from 0 to {_c(total)} {cur} vs {against}: "
                    "an increase of any percentage",
                )
            )
        else:
            pct = increase / before * 100
            if pct > policy.max_increase_percent:
                out.append(
                    Violation(
                        "max_increase_percent",
                        f"monthly cost grows by {_c(pct)}% vs {against} "
                        f"({_c(before)} -> {_c(total)} {cur}), more than "
                        f"{policy.max_increase_percent}%",
                    )
                )
    for cap in policy.resource_caps:
        for row in doc["resources"]:
            if row["monthly"] is None or row["priceSource"] == "none":
                continue
            if cap.type and not fnmatchcase(row["type"], cap.type):
                continue
            if cap.name and not (
                fnmatchcase(row["name"], cap.name) or fnmatchcase(row["address"], cap.name)
            ):
                continue
            monthly = Decimal(row["monthly"])
            if monthly > cap.max_monthly:
                what = " ".join(
                    x
                    for x in (
                        f"type {cap.type}" if cap.type else "",
                        f"name {cap.name}" if cap.name else "",
                    )
                    if x
                )
                out.append(
                    Violation(
                        "resource_cap",
                        f"{row['address']} costs {_c(monthly)} {cur}/month, over the cap of "
                        f"{_c(cap.max_monthly)} {cur} for {what}",
                        row["address"],
                    )
                )
    if policy.required_tags:
        for row in doc["resources"]:
            if row["op"] not in {"create", "update", "replace"} or row["priceSource"] == "free":
                continue
            missing = [t for t in policy.required_tags if not (row.get("tags") or {}).get(t)]
            if missing:
                out.append(
                    Violation(
                        "required_tags",
                        f"{row['address']} lacks required tag(s) {', '.join(missing)}",
                        row["address"],
                    )
                )
    return out


def budget_violations(
    doc: dict, budget: Decimal, *, allow_unpriced: bool = False
) -> list[Violation]:
    """`--budget N`: the policy `max_monthly: N`, unpriced resources failing it."""
    return evaluate(doc, Policy(max_monthly=budget), allow_unpriced=allow_unpriced)
