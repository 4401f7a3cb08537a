"""User decisions as events: what a person decided, carried to the service that applies it.

The api (issuer `api`) and the command line (issuer `cli`) publish these signed
(finfocus.signing); the remediation service verifies the issuer, applies the decision through
its consume pipeline and audits it as `<issuer>:<actor>`. Nobody else writes its tables.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import RequiredText, Text, Timestamp

#: topic of decisions on remediation commands (consumed by the remediation service)
REMEDIATION_DECISIONS = "remediation-decisions"
#: topic of decisions on recommendations (consumed by the remediation service)
RECOMMENDATION_DECISIONS = "recommendation-decisions"


class CommandDecision(StrEnum):
    """What a person decided about a remediation command."""

    APPROVE = "approve"
    REJECT = "reject"
    UNDO = "undo"


class RemediationDecisionV1(BaseModel):
    """Approve or reject a command waiting for approval, or undo an executed one."""

    model_config = ConfigDict(extra="forbid")

    decision_id: RequiredText = Field(
        max_length=100, description="Unique id of this decision (idempotence)"
    )
    command_id: RequiredText = Field(
        max_length=200, description="The remediation command decided on"
    )
    decision: CommandDecision = Field(description="approve, reject or undo")
    reason: Text | None = Field(None, max_length=2000, description="Why, recorded in the audit")
    actor: RequiredText = Field(
        max_length=200,
        description="Who decided, as the issuer authenticated "
        "them (e.g. user:alice, token:1a2b3c4d, root)",
    )
    decided_at: Timestamp = Field(description="When the decision was made")


class RecommendationAction(StrEnum):
    """What a person decided about a recommendation."""

    DISMISS = "dismiss"
    SNOOZE = "snooze"


class RecommendationDecisionV1(BaseModel):
    """Dismiss a recommendation for good, or snooze it until a date."""

    model_config = ConfigDict(extra="forbid")

    decision_id: RequiredText = Field(
        max_length=100, description="Unique id of this decision (idempotence)"
    )
    recommendation_id: RequiredText = Field(
        max_length=200, description="The recommendation decided on"
    )
    decision: RecommendationAction = Field(description="dismiss or snooze")
    reason: RequiredText = Field(max_length=2000, description="Why it does not apply, or not now")
    until: Timestamp | None = Field(
        None, description="When a snoozed recommendation comes back (snooze)"
    )
    actor: RequiredText = Field(
        max_length=200, description="Who decided, as the issuer authenticated them"
    )
    decided_at: Timestamp = Field(description="When the decision was made")

    def model_post_init(self, _context: object) -> None:
        if self.decision == RecommendationAction.SNOOZE and self.until is None:
            raise ValueError("a snooze needs until")
