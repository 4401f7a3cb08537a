"""Anomaly v1: a cost spike or drift, published on `anomalies` (snake_case fields)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import CurrencyCode, Money, RequiredText, Text, Timestamp


class Severity(StrEnum):
    """How much an anomaly matters, from its impact in money and in percent."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AnomalyStatus(StrEnum):
    """Life cycle of an anomaly: open while ongoing, resolved when restated data removes it."""

    OPEN = "open"
    ONGOING = "ongoing"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


class RootCauseV1(BaseModel):
    """A sub-dimension that explains part of an anomaly's impact."""

    model_config = ConfigDict(extra="forbid")

    dimension: dict[Text, Text] = Field(
        max_length=64, description="Sub-dimension, e.g. {'RegionId': 'us-east-1'}"
    )
    contribution: Money = Field(description="Part of the impact this sub-dimension explains")


class AnomalyV1(BaseModel):
    """A detected deviation of actual from expected cost on one dimension."""

    model_config = ConfigDict(extra="forbid")

    anomaly_id: RequiredText = Field(description="Stable per (monitor, dimension, start)")
    detected_at: Timestamp = Field(description="When the detector raised or last updated it")
    window_start: Timestamp = Field(description="Inclusive start of the anomalous window")
    window_end: Timestamp = Field(description="Exclusive end of the anomalous window")
    dimension: dict[Text, Text] = Field(
        max_length=64,
        description="Dimension values, e.g. {'ProviderName': 'AWS', 'ServiceName': 'EC2'}",
    )
    expected_cost: Money = Field(description="Cost the model expected over the window")
    actual_cost: Money = Field(description="Cost observed over the window")
    impact: Money = Field(description="actual_cost - expected_cost")
    impact_pct: Money | None = Field(
        None, description="impact / expected_cost * 100; null when nothing was expected"
    )
    currency: CurrencyCode = Field(description="ISO 4217 currency of the costs")
    severity: Severity = Field(description="low, medium, high or critical")
    score: float = Field(
        allow_inf_nan=False, description="Detector score (larger is more anomalous)"
    )
    detector: RequiredText = Field(description="Detector that raised it, e.g. 'mad' or 'budget'")
    root_causes: list[RootCauseV1] = Field(
        default_factory=list, max_length=100, description="Sub-dimensions explaining the impact"
    )
    status: AnomalyStatus = Field(
        AnomalyStatus.OPEN, description="open, ongoing, resolved or acknowledged"
    )
    monitor: Text | None = Field(None, description="Monitor that watched the dimension")


class AnomalyFeedbackV1(BaseModel):
    """A person's verdict on an anomaly, published on `anomaly-feedback` by
    `finfocus anomalies feedback`; the anomaly service mutes repeats of rejected alerts."""

    model_config = ConfigDict(extra="forbid")

    anomaly_id: RequiredText = Field(description="The anomaly judged")
    verdict: str = Field(
        pattern="^(yes|no|planned)$", description="yes, no (false alarm) or planned"
    )
    note: Text | None = Field(None, description="Free text")
    given_at: Timestamp = Field(description="When the verdict was given")
    actor: Text | None = Field(
        None,
        max_length=200,
        description="Who gave it, as the signing issuer "
        "authenticated them (e.g. user:alice); audited as <issuer>:<actor>",
    )
