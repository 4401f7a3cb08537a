"""People's decisions, applied as events: approve, reject and undo of commands, dismiss and
snooze of recommendations, from `remediation-decisions` / `recommendation-decisions`.

Only a decision signed by the api or the command line is applied (verified in `decode`; a
forged one is dead-lettered with the reason), inside the pipeline's transaction, and audited
with the signer and the actor it authenticated (`api:user:alice`, `cli:root`). A decision
that no longer applies (already decided, expired, nothing to undo) changes nothing: logged,
never dead-lettered, so a redelivered decision is harmless.
"""

from __future__ import annotations

import logging

from finfocus.broker import Envelope
from finfocus.service import ServiceRuntime
from finfocus.signing import service_keys, verify
from finfocus.telemetry import log_fields
from schemas.decisions import (
    RECOMMENDATION_DECISIONS,
    REMEDIATION_DECISIONS,
    CommandDecision,
    RecommendationDecisionV1,
    RemediationDecisionV1,
)
from services.remediation import store
from services.remediation.config import RemediationSettings

logger = logging.getLogger(__name__)

#: who may publish decisions: the api (for its authenticated users) and the command line
DECISION_ISSUERS = ("api", "cli")


async def apply_command_decision(
    conn, decision: RemediationDecisionV1, issuer: str
) -> tuple[bool, str]:
    actor = f"{issuer}:{decision.actor}"
    if decision.decision == CommandDecision.UNDO:
        return await store.request_undo(
            conn, decision.command_id, actor=actor, reason=decision.reason
        )
    return await store.decide(
        conn,
        decision.command_id,
        decision.decision == CommandDecision.APPROVE,
        actor=actor,
        reason=decision.reason,
    )


def register_decisions(runtime: ServiceRuntime, settings: RemediationSettings) -> None:
    """Subscribe the decision topics."""
    keys = service_keys(settings.home, DECISION_ISSUERS)

    def command_decision(env: Envelope) -> tuple[RemediationDecisionV1, str]:
        issuer = verify(keys, env.headers, env.topic, env.value, DECISION_ISSUERS)
        return RemediationDecisionV1.model_validate_json(env.value), issuer

    async def decide(conn, items: list[tuple[RemediationDecisionV1, str]]) -> None:
        for decision, issuer in items:
            changed, message = await apply_command_decision(conn, decision, issuer)
            logger.info(
                "decision %s",
                "applied" if changed else "not applied",
                extra=log_fields(decision_id=decision.decision_id, detail=message),
            )

    runtime.consume(
        REMEDIATION_DECISIONS,
        group="finfocus-remediation-decisions",
        label="RemediationDecision v1",
        decode=command_decision,
        work=decide,
        description="RemediationDecision v1 signed by the api or the CLI: approve, reject, undo",
    )

    def recommendation_decision(env: Envelope) -> tuple[RecommendationDecisionV1, str]:
        issuer = verify(keys, env.headers, env.topic, env.value, DECISION_ISSUERS)
        return RecommendationDecisionV1.model_validate_json(env.value), issuer

    async def set_states(conn, items: list[tuple[RecommendationDecisionV1, str]]) -> None:
        for decision, issuer in items:
            state = "dismissed" if decision.decision == "dismiss" else "snoozed"
            found = await store.set_recommendation_state(
                conn, decision.recommendation_id, state, decision.reason, decision.until
            )
            # recommendations keep no audit table: the decider is in the log line
            logger.info(
                "recommendation decision",
                extra=log_fields(
                    decision_id=decision.decision_id,
                    applied=found,
                    actor=f"{issuer}:{decision.actor}",
                ),
            )

    runtime.consume(
        RECOMMENDATION_DECISIONS,
        group="finfocus-remediation-recommendation-decisions",
        label="RecommendationDecision v1",
        decode=recommendation_decision,
        work=set_states,
        description="RecommendationDecision v1 signed by the api or the CLI: dismiss, snooze",
    )
