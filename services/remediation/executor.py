"""The executor: consumes commands and acts on them, behind the guardrails, with an audit trail.

Exactly-once effect per `command_id`:
- one executor at a time holds a command (a lease in `commands.claimed_until`);
- before acting it writes an `intent` audit row (committed), then acts, then records the result;
- before acting (also when resuming after a crash between acting and recording) it observes the
  target: a target already in the action's goal state is recorded as `already-satisfied`, and
  the action is not applied again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from schemas.remediation import (
    CommandMode,
    RemediationCommandV1,
    RemediationResultV1,
    RemediationTargetV1,
)
from services.remediation import store
from services.remediation.actions import validate_params
from services.remediation.cloud import ActionImpl
from services.remediation.domain import (
    DRY_RUN,
    EXECUTED,
    EXPIRED,
    FAILED,
    PENDING_APPROVAL,
    REJECTED,
    TERMINAL,
)
from services.remediation.guardrails import BLOCK, DEFER, EXPIRE, Policy, check

logger = logging.getLogger(__name__)
ACTOR = "executor"
LEASE = timedelta(minutes=5)
#: a command deferred by the schedule or the rate limit is looked at again after this
DEFER_BACKOFF = timedelta(minutes=1)

PublishResult = Callable[[RemediationResultV1], Awaitable[None]]
PolicyLookup = Callable[[str | None], Policy]


class Executor:
    def __init__(self, pool: asyncpg.Pool, impls: dict[str, ActionImpl], policy_for: PolicyLookup, *,
                 publish: PublishResult | None = None, clock: Callable[[], datetime] | None = None,
                 approval_channel: str = "log") -> None:
        self.pool = pool
        self.approval_channel = approval_channel
        self.impls = impls
        self.policy_for = policy_for
        self.publish = publish
        self.clock = clock or (lambda: datetime.now(UTC))

    async def accept(self, command: RemediationCommandV1, status: str) -> None:
        """Store a command that arrived on the topic if the planner has not stored it already."""
        async with store.transaction(self.pool) as conn:
            await store.insert_command(conn, command, status, actor=ACTOR)

    async def sweep(self, limit: int = 100) -> int:
        """Handle every command due now: approved, expired while waiting, undo requested."""
        async with self.pool.acquire() as conn:
            due = await store.due_commands(conn, self.clock(), limit)
        for command_id in due:
            await self.handle(command_id)
        return len(due)

    async def handle(self, command_id: str) -> None:
        now = self.clock()
        async with self.pool.acquire() as conn:
            row = await store.claim(conn, command_id, now, LEASE)
        if row is None:
            return  # unknown, or another executor holds it
        retry_at = None
        try:
            retry_at = await self._process(row, now)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            raise
        except Exception as exc:  # never leave a command half-handled without a trace
            logger.exception("executor failed on %s", command_id)
            await self._finish(row, FAILED, {"outcome": "error", "detail": repr(exc)[:2000]}, "failed")
        finally:
            async with self.pool.acquire() as conn:
                if retry_at is None:
                    await store.release(conn, command_id)
                else:  # a deferred command is not looked at again before then
                    await store.claim_until(conn, command_id, retry_at)

    # --- steps ---------------------------------------------------------------------------

    async def _finish(self, row, status: str, result: dict, event: str, *, before: Any = None,
                      after: Any = None, executed_at: datetime | None = None, undo: Any = None) -> None:
        async with store.transaction(self.pool) as conn:
            await store.set_status(conn, row["command_id"], status, result, executed_at=executed_at, undo=undo)
            await store.append_audit(conn, row["command_id"], event, actor=ACTOR, action=row["action"],
                                     mode=row["mode"], reason=result.get("detail"),
                                     state_before=before, state_after=after, result=result)
        if self.publish is not None:
            await self.publish(RemediationResultV1(
                command_id=row["command_id"], status=status, at=self.clock(), action=row["action"],
                resource_id=row["resource_id"], result=store._json(result)))

    async def _audit(self, row, event: str, **kwargs) -> None:
        async with store.transaction(self.pool) as conn:
            await store.append_audit(conn, row["command_id"], event, actor=ACTOR, action=row["action"],
                                     mode=row["mode"], **kwargs)

    async def _process(self, row, now: datetime) -> datetime | None:
        """Handle one claimed command; returns when to look again if it was deferred."""
        status = row["status"]
        if status == EXECUTED and row["undo_requested_at"] is not None and row["undone_at"] is None:
            await self._undo(row)
            return
        if status in TERMINAL:
            return
        expires_at = row["expires_at"]
        if expires_at is not None and now >= expires_at:
            await self._finish(row, EXPIRED, {"outcome": "expired", "detail": f"not run before {expires_at.isoformat()}"},
                               "expired")
            return
        if status == PENDING_APPROVAL:
            await self._request_approval(row)
            return  # waits for `finfocus remediation approve`
        command = RemediationCommandV1.model_validate(row["command"])
        impl = self.impls.get(command.action)
        if impl is None:
            await self._finish(row, FAILED, {"outcome": "error", "detail": f"no executor for {command.action!r}"}, "failed")
            return
        try:
            params = validate_params(command.action, command.params).model_dump(exclude_none=True)
        except ValueError as exc:
            await self._finish(row, FAILED, {"outcome": "error", "detail": str(exc)}, "failed")
            return
        async with self.pool.acquire() as conn:
            intents = [a for a in await store.audit_events(conn, row["command_id"]) if a["event"] == "intent"]
            executed_last_hour = await store.executed_since(conn, command.target.account_id, now - timedelta(hours=1))
        resumed = bool(intents)
        before = await asyncio.to_thread(impl.observe, command.target, params)
        execute = command.mode == CommandMode.EXECUTE
        verdict = check(resource_id=command.target.resource_id, execute=execute, expires_at=expires_at, now=now,
                        policy=self.policy_for(command.playbook), tags=before.get("tags", {}),
                        executed_last_hour=executed_last_hour)
        if verdict.outcome == EXPIRE:
            await self._finish(row, EXPIRED, {"outcome": "expired", "detail": verdict.detail}, "expired", before=before)
            return
        if verdict.outcome == BLOCK:
            await self._finish(row, REJECTED, {"outcome": "blocked", "rule": verdict.rule, "detail": verdict.detail,
                                               "mode": command.mode.value}, "blocked", before=before)
            return
        if verdict.outcome == DEFER:
            async with self.pool.acquire() as conn:
                events = await store.audit_events(conn, row["command_id"])
            last = events[-1] if events else None
            if not (last and last["event"] == "deferred" and (last["result"] or {}).get("rule") == verdict.rule):
                await self._audit(row, "deferred", reason=verdict.detail, state_before=before,
                                  result={"rule": verdict.rule})
            return now + DEFER_BACKOFF
        if not execute:
            preview = impl.preview(before, params)
            await self._finish(row, DRY_RUN, {"outcome": "dry-run", "would": preview,
                                              "detail": f"would run {command.action} on {command.target.resource_id}"},
                               "dry-run", before=before, after=preview)
            return
        if not before.get("exists", True) and not impl.satisfied(before, params):
            await self._finish(row, FAILED, {"outcome": "error", "detail": f"{command.target.resource_id} not found"},
                               "failed", before=before)
            return
        if not before.get("exists", True) and not resumed:
            await self._finish(row, FAILED, {"outcome": "error", "detail": f"{command.target.resource_id} not found"},
                               "failed", before=before)
            return
        if impl.satisfied(before, params):
            planned_undo = (intents[-1]["result"] or {}).get("undo") if intents else None
            detail = ("completed before a restart; not applied again" if resumed
                      else "target already in the desired state")
            await self._finish(row, EXECUTED, {"outcome": "already-satisfied", "detail": detail, "state_after": before},
                               "executed", before=before, after=before, executed_at=now, undo=planned_undo)
            return
        await self._audit(row, "intent", reason=command.reason.text, state_before=before,
                          result={"undo": _planned_undo(command.action, before)})
        try:
            after, undo = await asyncio.to_thread(impl.apply, command, params, before)
        except Exception as exc:
            await self._finish(row, FAILED, {"outcome": "error", "detail": f"{type(exc).__name__}: {exc}"[:2000]},
                               "failed", before=before)
            return
        await self._finish(row, EXECUTED, {"outcome": "done", "detail": f"{command.action} on {command.target.resource_id}",
                                           "state_after": after}, "executed",
                           before=before, after=after, executed_at=self.clock(), undo=undo)

    async def _request_approval(self, row) -> None:
        """Tell people once that a command waits for them (log, or the approval webhook)."""
        async with self.pool.acquire() as conn:
            if any(a["event"] == "approval-requested" for a in await store.audit_events(conn, row["command_id"])):
                return
        command = RemediationCommandV1.model_validate(row["command"])
        text = (f"FinFocus needs an approval: {command.action} on {command.target.resource_id} "
                f"({command.reason.text}); run `finfocus remediation approve {command.command_id}` "
                f"or `reject` before {command.expires_at.isoformat() if command.expires_at else 'it expires'}")
        notify = self.impls.get("notify")
        outcome: dict = {"channel": self.approval_channel}
        try:
            params = {"channel": self.approval_channel, "message": text,
                      "webhook_secret": "remediation-approval-webhook-url"}
            await asyncio.to_thread(notify.apply, command, params, {})
            outcome["delivered"] = True
        except Exception as exc:  # the request stays visible in `finfocus remediation list`
            outcome.update(delivered=False, detail=f"{type(exc).__name__}: {exc}"[:500])
        async with store.transaction(self.pool) as conn:
            # The command may have been cancelled (anomaly resolved) or decided meanwhile; the
            # row lock orders this record after any such change, never before it.
            if await store.status_for_update(conn, row["command_id"]) != "pending-approval":
                return
            await store.append_audit(conn, row["command_id"], "approval-requested", actor=ACTOR,
                                     action=row["action"], mode=row["mode"], reason=text, result=outcome)

    async def _undo(self, row) -> None:
        impl = self.impls.get(row["action"])
        target = RemediationTargetV1.model_validate(row["command"]["target"])
        try:
            result = await asyncio.to_thread(impl.undo, target, row["undo"])
        except Exception as exc:
            await self._audit(row, "undo-failed", reason=f"{type(exc).__name__}: {exc}"[:2000])
            async with store.transaction(self.pool) as conn:
                await store.mark_undone(conn, row["command_id"], {"outcome": "error", "detail": str(exc)[:2000]})
            return
        async with store.transaction(self.pool) as conn:
            await store.mark_undone(conn, row["command_id"], {"outcome": "undone", "state_after": result})
            await store.append_audit(conn, row["command_id"], "undone", actor=ACTOR, action=row["action"],
                                     mode=row["mode"], state_before=row["result"], state_after=result,
                                     result={"undo": row["undo"]})


def _planned_undo(action: str, before: dict) -> dict | None:
    """What undoing needs, known before acting (kept in the intent row for crash recovery)."""
    if action == "stop-instance":
        return {"start": before.get("state") == "running"}
    if action == "resize-instance":
        return {"instance_type": before.get("instance_type"),
                "restart": before.get("state") in {"running", "pending"}}
    if action == "scale-down":
        return {"desired_capacity": before.get("desired_capacity"), "min_size": before.get("min_size")}
    return None


async def run_sweeps(executor: Executor, interval: float, stop: asyncio.Event) -> None:
    """Background loop of the service: approvals, expiries and undo requests are picked up here."""
    while not stop.is_set():
        try:
            await executor.sweep()
        except Exception:
            logger.exception("executor sweep failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
