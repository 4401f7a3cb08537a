"""Planning: which commands an anomaly or a recommendation gives, under which playbooks.

Pure: no I/O. The handler hands in the playbooks and the candidate resources it looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from schemas.anomaly import AnomalyV1
from schemas.remediation import (
    CommandMode,
    RecommendationV1,
    RemediationCommandV1,
    RemediationReasonV1,
    RemediationTargetV1,
    derive_command_id,
)
from services.remediation.actions import REGISTRY, resource_kind
from services.remediation.playbooks import Playbook, anomaly_matches, resource_matches

#: average days in a month (365 / 12): daily cost x this = monthly cost
DAYS_PER_MONTH = Decimal(365) / Decimal(12)
CENT = Decimal("0.01")
DEFAULT_PLAYBOOK = "default-notify"
DEFAULT_EXPIRY = timedelta(hours=24)

#: statuses of a command (ARCHITECTURE.md)
PENDING_APPROVAL = "pending-approval"
APPROVED = "approved"
EXECUTED = "executed"
DRY_RUN = "dry-run"
REJECTED = "rejected"
EXPIRED = "expired"
FAILED = "failed"
STATUSES = (PENDING_APPROVAL, APPROVED, EXECUTED, DRY_RUN, REJECTED, EXPIRED, FAILED)
TERMINAL = frozenset({EXECUTED, DRY_RUN, REJECTED, EXPIRED, FAILED})


def monthly(daily: Decimal) -> Decimal:
    """A daily cost as a monthly one, to the cent."""
    return (daily * DAYS_PER_MONTH).quantize(CENT)


@dataclass(frozen=True)
class Candidate:
    """A resource an anomaly's commands may act on, with what billing data says about it."""

    resource_id: str
    provider: str
    account_id: str | None = None
    region: str | None = None
    resource_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    daily_cost: Decimal = Decimal(0)
    currency: str | None = None

    @property
    def kind(self) -> str:
        return resource_kind(self.resource_id, self.resource_type)


def initial_status(command: RemediationCommandV1) -> str:
    """Execute-mode commands that need approval wait for it; everything else is ready to run."""
    if command.requires_approval and command.mode == CommandMode.EXECUTE:
        return PENDING_APPROVAL
    return APPROVED


def dimension_label(dimension: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(dimension.items())) or "(all)"


def rank_candidates(anomaly: AnomalyV1, known: list[Candidate]) -> list[Candidate]:
    """Resources named by the anomaly first (its dimension, then root causes by contribution),
    then the other resources of the dimension by cost in the window; all of them among `known`
    (the resources billing data shows)."""
    by_id = {c.resource_id: c for c in known}
    named: dict[str, dict[str, str]] = {}  # resource id -> the dimension naming it
    if anomaly.dimension.get("ResourceId"):
        named[anomaly.dimension["ResourceId"]] = anomaly.dimension
    for cause in sorted(anomaly.root_causes, key=lambda c: c.contribution, reverse=True):
        rid = cause.dimension.get("ResourceId")
        if rid and rid not in named:
            named[rid] = {**anomaly.dimension, **cause.dimension}
    # only resources seen in billing data: a resource id an anomaly names is a claim of its
    # producer, never reason enough to act on something FinFocus has not billed
    ordered = [by_id[rid] for rid in named if rid in by_id]
    rest = sorted(
        (c for c in known if c.resource_id not in named), key=lambda c: c.daily_cost, reverse=True
    )
    return ordered + rest


def _anomaly_text(anomaly: AnomalyV1, playbook: str) -> str:
    pct = f" ({anomaly.impact_pct:+.1f} %)" if anomaly.impact_pct is not None else ""
    return (
        f"{playbook}: {anomaly.severity} {anomaly.detector} anomaly on "
        f"{dimension_label(anomaly.dimension)}: {anomaly.actual_cost} {anomaly.currency} "
        f"against {anomaly.expected_cost} expected{pct}"
    )


def default_notify(anomaly: AnomalyV1, now: datetime) -> RemediationCommandV1:
    """What every anomaly gives when no playbook claims it: a dry-run notification."""
    resource_id = anomaly.dimension.get("ResourceId") or dimension_label(anomaly.dimension)
    return RemediationCommandV1(
        command_id=derive_command_id(anomaly.anomaly_id, "notify", resource_id),
        issued_at=now,
        action="notify",
        target=RemediationTargetV1(
            provider=anomaly.dimension.get("ProviderName", "unknown"),
            account_id=anomaly.dimension.get("SubAccountId")
            or anomaly.dimension.get("BillingAccountId"),
            region=anomaly.dimension.get("RegionId"),
            resource_id=resource_id,
            resource_type="dimension" if "ResourceId" not in anomaly.dimension else None,
        ),
        params={"channel": "log"},
        reason=RemediationReasonV1(
            anomaly_id=anomaly.anomaly_id, text=_anomaly_text(anomaly, DEFAULT_PLAYBOOK)
        ),
        mode=CommandMode.DRY_RUN,
        requires_approval=False,
        currency=anomaly.currency,
        expires_at=now + DEFAULT_EXPIRY,
        playbook=DEFAULT_PLAYBOOK,
    )


def _command(
    playbook: Playbook,
    step_action: str,
    params: dict,
    target: RemediationTargetV1,
    cause_id: str,
    reason: RemediationReasonV1,
    now: datetime,
    savings: Decimal | None,
    currency: str | None,
) -> RemediationCommandV1:
    expiry = (
        timedelta(hours=playbook.approval.expires_after_hours)
        if playbook.approval.required
        else DEFAULT_EXPIRY
    )
    return RemediationCommandV1(
        command_id=derive_command_id(cause_id, step_action, target.resource_id),
        issued_at=now,
        action=step_action,
        target=target,
        params=params,
        reason=reason,
        mode=CommandMode(playbook.mode),
        requires_approval=playbook.approval.required,
        expected_monthly_savings=savings,
        currency=currency,
        expires_at=now + expiry,
        playbook=playbook.name,
    )


def _playbook_commands(
    playbook: Playbook, anomaly: AnomalyV1, ranked: list[Candidate], now: datetime
) -> list[RemediationCommandV1]:
    reason = RemediationReasonV1(
        anomaly_id=anomaly.anomaly_id, text=_anomaly_text(anomaly, playbook.name)
    )
    out: list[RemediationCommandV1] = []
    for step in playbook.actions:
        if step.action == "notify":
            notify = default_notify(anomaly, now)
            out.append(
                _command(
                    playbook,
                    "notify",
                    step.params,
                    notify.target,
                    anomaly.anomaly_id,
                    reason,
                    now,
                    None,
                    anomaly.currency,
                )
            )
            continue
        kinds = REGISTRY[step.action].resource_types
        targets = [
            c
            for c in ranked
            if ("*" in kinds or c.kind in kinds)
            and resource_matches(
                playbook.resources, kind=c.kind, region=c.region, account=c.account_id, tags=c.tags
            )
        ][: playbook.resources.max_targets]
        for c in targets:
            target = RemediationTargetV1(
                provider=c.provider,
                account_id=c.account_id,
                region=c.region,
                resource_id=c.resource_id,
                resource_type=c.kind,
            )
            savings = (
                monthly(c.daily_cost) if step.action in SAVING_ACTIONS and c.daily_cost else None
            )
            out.append(
                _command(
                    playbook,
                    step.action,
                    step.params,
                    target,
                    anomaly.anomaly_id,
                    reason,
                    now,
                    savings,
                    c.currency or anomaly.currency,
                )
            )
    return out


def plan_anomaly(
    anomaly: AnomalyV1,
    playbooks: list[Playbook],
    candidates: list[Candidate],
    now: datetime,
    failures: list[str] | None = None,
) -> list[RemediationCommandV1]:
    """The commands one anomaly gives: those of every matching playbook, and always a notify
    (a dry-run one when no matching playbook notifies). A playbook whose planning fails gives
    nothing (its error is appended to `failures`) and never silences the others nor the notify."""
    matching = [
        p
        for p in playbooks
        if p.enabled
        and p.trigger.anomaly is not None
        and anomaly_matches(
            p.trigger.anomaly,
            detector=anomaly.detector,
            severity=anomaly.severity.value,
            dimension=anomaly.dimension,
            impact=anomaly.impact,
            impact_pct=anomaly.impact_pct,
        )
    ]
    if not matching:
        return [default_notify(anomaly, now)]
    ranked = rank_candidates(anomaly, candidates)
    commands: dict[str, RemediationCommandV1] = {}
    for playbook in matching:
        try:
            planned = _playbook_commands(playbook, anomaly, ranked, now)
        except (ArithmeticError, ValueError, OverflowError) as exc:
            if failures is not None:
                failures.append(f"playbook {playbook.name}: {type(exc).__name__}: {exc}")
            continue
        for cmd in planned:
            commands.setdefault(cmd.command_id, cmd)
    if not any(c.action == "notify" for c in commands.values()):
        # every anomaly is announced, whatever else its playbooks do (dry-run unless a playbook says)
        notify = default_notify(anomaly, now)
        commands.setdefault(notify.command_id, notify)
    return list(commands.values())


#: actions whose expected saving is the resource's whole cost
SAVING_ACTIONS = frozenset({"stop-instance", "delete-volume", "release-address"})


def plan_recommendation(
    rec: RecommendationV1, playbooks: list[Playbook], tags: dict[str, str], now: datetime
) -> list[RemediationCommandV1]:
    """Commands of the playbooks whose recommendation trigger names this recommendation's type."""
    commands: dict[str, RemediationCommandV1] = {}
    kind = resource_kind(rec.target.resource_id, rec.target.resource_type)
    for playbook in playbooks:
        trigger = playbook.trigger.recommendation
        if not playbook.enabled or trigger is None or rec.type not in trigger.types:
            continue
        if not resource_matches(
            playbook.resources,
            kind=kind,
            region=rec.target.region,
            account=rec.target.account_id,
            tags=tags,
        ):
            continue
        reason = RemediationReasonV1(
            recommendation_id=rec.recommendation_id, text=f"{playbook.name}: {rec.rationale}"
        )
        for step in playbook.actions:
            kinds = REGISTRY[step.action].resource_types
            if "*" not in kinds and kind not in kinds:
                continue
            params = step.params or rec.params if step.action == rec.action else step.params
            savings = rec.estimated_monthly_savings if step.action == rec.action else None
            cmd = _command(
                playbook,
                step.action,
                params,
                rec.target,
                rec.recommendation_id,
                reason,
                now,
                savings,
                rec.currency,
            )
            commands.setdefault(cmd.command_id, cmd)
    return list(commands.values())
