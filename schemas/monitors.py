"""MonitorCommand v1: add, replace or remove one anomaly monitor, on `monitor-commands`.

The anomaly service owns its monitors (schema `anomaly`, view `v_monitors`): the api (issuer
`api`, for an admin) and the command line (issuer `cli`) publish these signed
(finfocus.signing); the anomaly service verifies the issuer, checks the monitor against its
dimension and detector registries, applies it through its consume pipeline and records the
outcome in `v_monitor_audit` with the actor as `<issuer>:<actor>` (a refused command is
audited with the reason, never applied).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import RequiredText, Text, Timestamp

#: topic of monitor commands (consumed by the anomaly service)
MONITOR_COMMANDS = "monitor-commands"

#: a detector parameter: a flag, an integer, a decimal (never a float: thresholds and
#: impacts may be money) or a string
ParamValue = bool | int | Decimal | str


class MonitorAction(StrEnum):
    """What the command does to the monitor named `name`."""

    SET = "set"
    REMOVE = "remove"


class MonitorDefinitionV1(BaseModel):
    """What a monitor watches and how (the fields of a monitors YAML entry)."""

    model_config = ConfigDict(extra="forbid")

    dimensions: list[Text] = Field(
        default_factory=list,
        max_length=10,
        description="FOCUS dimensions (ProviderName, SubAccountId, ServiceName, RegionId, ...) "
        "or tag:KEY: one series per combination of their values",
    )
    filters: dict[Text, Text] = Field(
        default_factory=dict, description="dimension -> required value: only matching lines"
    )
    top: int | None = Field(None, ge=1, le=10_000, description="Track only the N costliest values")
    detector: str = Field(
        "robust-seasonal", min_length=1, max_length=100, description="Registered detector name"
    )
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Detector parameters (checked by the anomaly service)"
    )


class MonitorCommandV1(BaseModel):
    """Add or replace (`set`) or remove one monitor by name."""

    model_config = ConfigDict(extra="forbid")

    command_id: RequiredText = Field(
        max_length=100, description="Unique id of this command (idempotence; the audit's key)"
    )
    action: MonitorAction = Field(description="set (add or replace) or remove")
    name: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$", description="kebab-case name"
    )
    monitor: MonitorDefinitionV1 | None = Field(None, description="The monitor (set only)")
    actor: RequiredText = Field(
        max_length=200,
        description="Who issued it, as the signing issuer authenticated them "
        "(e.g. user:alice, oidc:u-1234, root); audited as <issuer>:<actor>",
    )
    issued_at: Timestamp = Field(description="When the command was issued")

    def model_post_init(self, _context: object) -> None:
        if (self.action == MonitorAction.SET) != (self.monitor is not None):
            raise ValueError("a set command carries the monitor; a remove command does not")
