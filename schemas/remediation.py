"""RemediationCommand v1: an action on a cloud resource, published on `remediation-commands`."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.common import CurrencyCode, JsonObject, Money, Text, Timestamp


class CommandMode(StrEnum):
    """Dry-run commands leave the same audit trail but change nothing."""

    DRY_RUN = "dry-run"
    EXECUTE = "execute"


class RemediationTargetV1(BaseModel):
    """The resource a command acts on."""

    model_config = ConfigDict(extra="forbid")

    provider: Text = Field(description="Provider name, e.g. AWS")
    account_id: Text | None = Field(None, description="Account (SubAccountId) owning the resource")
    region: Text | None = Field(None, description="Region id of the resource")
    resource_id: Text = Field(description="Provider resource id")
    resource_type: Text | None = Field(None, description="Kind of resource, e.g. instance")


class RemediationReasonV1(BaseModel):
    """Why the command exists: the anomaly or recommendation, and a sentence for people."""

    model_config = ConfigDict(extra="forbid")

    anomaly_id: Text | None = Field(None, description="Anomaly that triggered the command")
    recommendation_id: Text | None = Field(None, description="Recommendation that triggered it")
    text: Text = Field(description="One sentence explaining the command")


class RemediationCommandV1(BaseModel):
    """An action to take on one resource, behind guardrails."""

    model_config = ConfigDict(extra="forbid")

    command_id: Text = Field(
        description="Deterministic: the same cause and action give the same id"
    )
    issued_at: Timestamp = Field(description="When the command was issued")
    action: Text = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", description="Registered action key")
    target: RemediationTargetV1 = Field(description="Resource acted on")
    params: JsonObject = Field(default_factory=dict, description="Parameters of the action")
    reason: RemediationReasonV1 = Field(description="Cause of the command")
    mode: CommandMode = Field(CommandMode.DRY_RUN, description="'dry-run' or 'execute'")
    requires_approval: bool = Field(False, description="Waits for `finfocus remediation approve`")
    expected_monthly_savings: Money | None = Field(None, description="Estimated monthly saving")
    currency: CurrencyCode | None = Field(None, description="Currency of the expected savings")
    expires_at: Timestamp | None = Field(None, description="Not executed after this time")
    playbook: Text | None = Field(None, description="Playbook that issued the command")


def derive_command_id(cause_id: str, action: str, resource_id: str) -> str:
    """Same cause, action and resource give the same id, so a replay never acts twice."""
    return hashlib.sha256(f"{cause_id}|{action}|{resource_id}".encode()).hexdigest()[:32]


class RemediationResultV1(BaseModel):
    """What the executor did with a command, published on `remediation-results`."""

    model_config = ConfigDict(extra="forbid")

    command_id: Text = Field(description="Command this result is about")
    status: Text = Field(description="executed, dry-run, rejected, expired or failed")
    at: Timestamp = Field(description="When the executor recorded it")
    action: Text = Field(description="Registered action key")
    resource_id: Text = Field(description="Target resource id")
    result: JsonObject = Field(default_factory=dict, description="Outcome, state before and after")


class RecommendationV1(BaseModel):
    """A savings opportunity found in billing data or utilisation, published on `recommendations`."""

    model_config = ConfigDict(extra="forbid")

    recommendation_id: Text = Field(description="Stable per (type, resource)")
    type: Text = Field(description="e.g. idle-address, idle-instance, rightsize-instance")
    detected_at: Timestamp = Field(description="When it was (last) found")
    target: RemediationTargetV1 = Field(description="Resource concerned")
    action: Text | None = Field(None, description="Registered action that would act on it")
    params: JsonObject = Field(default_factory=dict, description="Parameters of that action")
    rationale: Text = Field(description="One sentence explaining the finding")
    evidence: JsonObject = Field(default_factory=dict, description="Figures behind it")
    estimated_monthly_savings: Money = Field(description="From the price catalog or billed cost")
    currency: CurrencyCode = Field(description="Currency of the saving")


class ResourceMetricV1(BaseModel):
    """Daily utilisation of one resource, published on `resource-metrics`."""

    model_config = ConfigDict(extra="forbid")

    resource_id: Text = Field(min_length=1, description="Provider resource id")
    date: Text = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="Day (UTC), YYYY-MM-DD")
    cpu_avg_pct: Money | None = Field(None, description="Average CPU utilisation, percent")
    cpu_max_pct: Money | None = Field(None, description="Maximum CPU utilisation, percent")
    cpu_p995_pct: Money | None = Field(None, description="99.5th percentile CPU, percent")
    network_mb: Money | None = Field(None, description="Network in + out, megabytes")

    @field_validator("date")
    @classmethod
    def _real_day(cls, value: str) -> str:
        from datetime import date as calendar_day

        calendar_day.fromisoformat(value)  # 2026-13-01 matches the pattern but is no day
        return value
