"""PlaybookCommand v1: enable or disable one remediation playbook, on `playbook-commands`.

Playbooks are YAML files of the remediation service (`FINFOCUS_HOME/playbooks/`, each with
its own `enabled`); an admin's switch overrides that flag without editing the file. The api
(issuer `api`) and the command line (issuer `cli`) publish these signed (finfocus.signing);
the remediation service verifies the issuer, applies the switch through its consume pipeline
(`v_playbooks` shows the effective state) and audits each command in `v_playbook_audit` with
the actor as `<issuer>:<actor>` (an unknown playbook is refused and audited with the reason).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import RequiredText, Text, Timestamp

#: topic of playbook commands (consumed by the remediation service)
PLAYBOOK_COMMANDS = "playbook-commands"


class PlaybookAction(StrEnum):
    """What the command does to the playbook named `name`."""

    ENABLE = "enable"
    DISABLE = "disable"


class PlaybookCommandV1(BaseModel):
    """Switch one playbook on or off (the switch overrides the file's `enabled`)."""

    model_config = ConfigDict(extra="forbid")

    command_id: RequiredText = Field(
        max_length=100, description="Unique id of this command (idempotence; the audit's key)"
    )
    action: PlaybookAction = Field(description="enable or disable")
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Playbook name",
    )
    reason: Text | None = Field(None, max_length=2000, description="Why, recorded in the audit")
    actor: RequiredText = Field(
        max_length=200,
        description="Who issued it, as the signing issuer authenticated them; audited as "
        "<issuer>:<actor>",
    )
    issued_at: Timestamp = Field(description="When the command was issued")
