"""Settings of the anomaly service (environment variables prefixed FINFOCUS_)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field

from finfocus.settings import ServiceSettings


class AnomalySettings(ServiceSettings):
    """Anomaly settings on top of the shared base."""

    service_name: str = "anomaly"
    #: FINFOCUS_BROKER_EPOCH / FINFOCUS_BROKER_RECOVER_SINCE: set by the embedded stack; under
    #: an epoch not recorded yet, the anomalies updated since then are published again
    broker_epoch: str | None = Field(None, description="Embedded broker epoch (set by the stack)")
    broker_recover_since: datetime | None = Field(
        None,
        description="After a broker loss: re-publish anomalies updated since then (set by the stack)",
    )
    anomaly_batch_max_records: int = Field(20000, ge=1, description="Records per consumed batch")
    anomaly_monitors_file: Path | None = Field(
        None, description="YAML monitors (default FINFOCUS_HOME/anomaly/monitors.yaml)"
    )
    anomaly_subscriptions_file: Path | None = Field(
        None,
        description="YAML alert subscriptions (default FINFOCUS_HOME/anomaly/subscriptions.yaml)",
    )
    anomaly_max_days: int = Field(
        400, ge=30, description="Days of history a series is evaluated over"
    )
    anomaly_suppress_days: int = Field(
        30,
        ge=0,
        description="Days after an anomaly marked 'no' or 'planned' in which its series raises nothing new",
    )
    anomaly_lateness_hours: float = Field(
        0,
        ge=0,
        description="Allowed lateness: a day is complete this long after the watermark passes it",
    )

    anomaly_alert_poll_s: float = Field(
        5.0, gt=0, description="How often the alert worker looks for due deliveries"
    )
    anomaly_alert_retry_base_s: float = Field(
        30.0, ge=0, description="First retry delay of a failed webhook call (doubles)"
    )
    anomaly_alert_max_attempts: int = Field(
        6, ge=1, description="Attempts before a delivery is marked failed"
    )

    @property
    def monitors_file(self) -> Path:
        return self.anomaly_monitors_file or self.home / "anomaly" / "monitors.yaml"

    @property
    def subscriptions_file(self) -> Path:
        return self.anomaly_subscriptions_file or self.home / "anomaly" / "subscriptions.yaml"
