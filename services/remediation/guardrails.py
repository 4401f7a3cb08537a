"""Guardrails: may this command act now on this resource? Pure: the executor supplies facts.

Order of the checks: expiry, unknown playbook, deny list, allow list, protect tag, schedule window, rate limit.
Blocks are final (the command is rejected with the rule that stopped it); schedule and rate
limit only defer (the executor tries again until the command expires).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from services.remediation.playbooks import Playbook, Window, glob_any, in_schedule

Outcome = Literal["proceed", "block", "defer", "expire"]
PROCEED: Final = "proceed"
BLOCK: Final = "block"
DEFER: Final = "defer"
EXPIRE: Final = "expire"


@dataclass(frozen=True)
class Policy:
    """The guardrails that apply to one command: its playbook's, plus the global protect tag."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    protect_tags: tuple[str, ...] = ("finfocus:protect=true",)
    rate_limit_per_hour: int = 10
    windows: tuple[Window, ...] = field(default_factory=tuple)
    #: False when the command's playbook no longer exists: nothing then runs for real
    known: bool = True
    #: the playbook's mode now; a command never runs in a stronger mode than its playbook's
    mode: Literal["dry-run", "execute"] = "execute"
    #: the playbook asks for a person's approval now (also for commands issued before)
    approval_required: bool = False


def policy_for(
    playbook: Playbook | None, *, global_protect_tag: str, default_rate_limit: int
) -> Policy:
    """The policy of a playbook (or the defaults when the command names none we know)."""
    tags = {global_protect_tag} if global_protect_tag else set()
    if playbook is None:
        return Policy(
            protect_tags=tuple(sorted(tags)),
            rate_limit_per_hour=default_rate_limit,
            known=False,
            mode="dry-run",
        )
    if playbook.protect.tag:
        tags.add(playbook.protect.tag)
    return Policy(
        allow=tuple(playbook.protect.allow),
        deny=tuple(playbook.protect.deny),
        protect_tags=tuple(sorted(tags)),
        rate_limit_per_hour=playbook.rate_limit.per_account_per_hour,
        windows=tuple(playbook.schedule),
        mode=playbook.mode if playbook.enabled else "dry-run",
        approval_required=playbook.approval.required,
    )


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    rule: str | None = None
    detail: str = ""


def is_protected(tags: dict[str, str], protect_tags: tuple[str, ...]) -> str | None:
    """The protect tag (KEY=VALUE) the resource carries, if any; values compare case-insensitively."""
    for pair in protect_tags:
        key, _, value = pair.partition("=")
        if key in tags and tags[key].strip().lower() == value.strip().lower():
            return pair
    return None


def check(
    *,
    resource_id: str,
    execute: bool,
    expires_at: datetime | None,
    now: datetime,
    policy: Policy,
    tags: dict[str, str],
    executed_last_hour: int,
) -> Verdict:
    """The guardrail verdict for one command at `now` (dry-run commands are checked the same
    way, so their audit shows what would really happen; only the rate limit ignores them)."""
    if expires_at is not None and now >= expires_at:
        return Verdict(EXPIRE, "expiry", f"expired at {expires_at.isoformat()}")
    if execute and not policy.known:
        return Verdict(
            BLOCK,
            "unknown-playbook",
            "the command's playbook no longer exists: its guardrails cannot be checked",
        )
    if policy.deny and glob_any(resource_id, list(policy.deny)):
        return Verdict(BLOCK, "deny-list", f"{resource_id} matches the deny list")
    if policy.allow and not glob_any(resource_id, list(policy.allow)):
        return Verdict(BLOCK, "allow-list", f"{resource_id} is not on the allow list")
    protected = is_protected(tags, policy.protect_tags)
    if protected:
        return Verdict(BLOCK, "protected-tag", f"{resource_id} carries {protected}")
    if not in_schedule(list(policy.windows), now):
        return Verdict(DEFER, "schedule", "outside the playbook's schedule windows")
    if execute and executed_last_hour >= policy.rate_limit_per_hour:
        return Verdict(
            DEFER,
            "rate-limit",
            f"{executed_last_hour} actions in the account in the last hour "
            f"(limit {policy.rate_limit_per_hour})",
        )
    return Verdict(PROCEED)
