"""Settings of the remediation service (environment variables prefixed `FINFOCUS_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from finfocus.settings import ServiceSettings


class RemediationSettings(ServiceSettings):
    """Remediation: planning, the guarded executor, recommendations and savings."""

    service_name: str = "remediation"
    #: FINFOCUS_BROKER_EPOCH: set by the embedded stack; under an epoch not recorded yet, the
    #: stored commands not run yet are published again
    broker_epoch: str | None = Field(None, description="Embedded broker epoch (set by the stack)")
    #: run the executor (consumer of remediation-commands) inside the service process
    remediation_executor: bool = True
    #: how often the executor looks for approved, expired and undo-requested commands
    remediation_poll_seconds: float = Field(2.0, gt=0)
    #: an anomaly can arrive before this service's copy of the priced lines it is about (two
    #: topics, each consumed at its own pace): planning waits this long for its resources
    remediation_resource_wait_seconds: float = Field(60.0, ge=0, le=3600)
    #: playbook directory; FINFOCUS_HOME/playbooks when unset
    remediation_playbooks_dir: Path | None = None
    #: executed actions per account per hour when a command's playbook sets none
    remediation_rate_limit_per_hour: int = Field(10, ge=0, le=1000)
    #: KEY=VALUE tag protecting a resource from every playbook
    remediation_protect_tag: str = "finfocus:protect=true"
    #: how often recommendations and savings are recomputed from stored billing data
    remediation_analysis_seconds: float = Field(15.0, gt=0)
    #: price catalog for recommendations (YAML); the packaged one when unset
    remediation_price_catalog: Path | None = None

    #: where approval requests go: log, or slack/teams through the secret
    #: `remediation-approval-webhook-url`
    remediation_approval_channel: Literal["log", "slack", "teams"] = "log"

    @property
    def playbooks_dir(self) -> Path:
        return self.remediation_playbooks_dir or self.home / "playbooks"
