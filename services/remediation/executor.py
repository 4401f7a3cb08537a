"""The executor: consumes commands and acts on them, behind the guardrails, with an audit trail.

Trust: the bus is not. A message on `remediation-commands` is only a nudge: the executor acts
on the command the planner stored under that `command_id` (and, where it has signing keys, on
messages the planner signed), never on a command it has not stored nor on one whose content
differs from the stored one; those are dead-lettered. Mode, approval and guardrails come from
the stored command and its playbook as it is now.

Exactly-once effect per `command_id`, safe to kill at any point:
- one executor at a time holds a command (a lease in `commands.claimed_until`);
- before the first change it writes an `intent` audit row (committed) with the state before;
- each change an action makes is journaled as a `step` audit row right after it happened;
- a resumed run takes the state before from the first intent (not from what the interrupted
  run left), skips the journaled steps and lets each action check the target before each step,
  so it finishes the work once and keeps the undo of the original state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from finfocus.signing import SigningKeys, UntrustedMessage, verify
from finfocus.telemetry import redact
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
#: issuers whose signature the executor accepts on remediation-commands
COMMAND_ISSUERS = ("remediation",)


class Executor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        impls: dict[str, ActionImpl],
        policy_for: PolicyLookup,
        *,
        publish: PublishResult | None = None,
        clock: Callable[[], datetime] | None = None,
        approval_channel: str = "log",
        keys: SigningKeys | None = None,
        step_hook: Callable[[str, str], None] | None = None,
    ) -> None:
        self.pool = pool
        self.keys = keys
        self.step_hook = step_hook
        self.approval_channel = approval_channel
        self.impls = impls
        self.policy_for = policy_for
        self.publish = publish
        self.clock = clock or (lambda: datetime.now(UTC))

    async def receive(self, value: bytes, headers: dict[str, bytes], topic: str) -> str | None:
        """Act on a message of `remediation-commands`; returns the reason to dead-letter it, or
        None. Only a command the planner stored is run, as stored: the message merely says
        which one, so a forged or altered message changes nothing."""
        if self.keys is not None:
            try:
                verify(self.keys, headers, topic, value, COMMAND_ISSUERS)
            except UntrustedMessage as exc:
                return str(exc)
        try:
            command = RemediationCommandV1.model_validate_json(value)
        except ValueError as exc:
            return f"invalid RemediationCommand v1: {exc}"[:4000]
        async with self.pool.acquire() as conn:
            stored = await store.get_command(conn, command.command_id)
        if stored is None:
            return f"unknown command {command.command_id}: the planner issued no such command"
        if RemediationCommandV1.model_validate(stored["command"]) != command:
            return (
                f"command {command.command_id} differs from the one the planner stored "
                "(only the stored command is ever run)"
            )
        await self.handle(command.command_id)
        return None

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
            await self._finish(
                row, FAILED, {"outcome": "error", "detail": error_text(exc)}, "failed"
            )
        finally:
            async with self.pool.acquire() as conn:
                if retry_at is None:
                    await store.release(conn, command_id)
                else:  # a deferred command is not looked at again before then
                    await store.claim_until(conn, command_id, retry_at)

    # --- steps ---------------------------------------------------------------------------

    async def _finish(
        self,
        row,
        status: str,
        result: dict,
        event: str,
        *,
        before: Any = None,
        after: Any = None,
        executed_at: datetime | None = None,
        undo: Any = None,
    ) -> None:
        async with store.transaction(self.pool) as conn:
            await store.set_status(
                conn, row["command_id"], status, result, executed_at=executed_at, undo=undo
            )
            await self._append_audit(
                conn,
                row,
                event,
                reason=result.get("detail"),
                state_before=before,
                state_after=after,
                result=result,
            )
        if self.publish is not None:
            await self.publish(
                RemediationResultV1(
                    command_id=row["command_id"],
                    status=status,
                    at=self.clock(),
                    action=row["action"],
                    resource_id=row["resource_id"],
                    result=store._json(result),
                )
            )

    async def _audit(self, row, event: str, **kwargs) -> None:
        async with store.transaction(self.pool) as conn:
            await self._append_audit(conn, row, event, **kwargs)

    @staticmethod
    async def _append_audit(conn, row, event: str, **kwargs) -> None:
        """An audit entry of the executor's about `row`'s command, in the caller's transaction."""
        await store.append_audit(
            conn,
            row["command_id"],
            event,
            actor=ACTOR,
            action=row["action"],
            mode=row["mode"],
            **kwargs,
        )

    async def _process(self, row, now: datetime) -> datetime | None:  # noqa: C901 - one branch per command state the executor acts on
        """Handle one claimed command; returns when to look again if it was deferred."""
        status = row["status"]
        if status == EXECUTED and row["undo_requested_at"] is not None and row["undone_at"] is None:
            await self._undo(row)
            return None
        if status in TERMINAL:
            return None
        expires_at = row["expires_at"]
        if expires_at is not None and now >= expires_at:
            await self._finish(
                row,
                EXPIRED,
                {"outcome": "expired", "detail": f"not run before {expires_at.isoformat()}"},
                "expired",
            )
            return None
        if status == PENDING_APPROVAL:
            await self._request_approval(row)
            return None  # waits for `finfocus remediation approve`
        command = RemediationCommandV1.model_validate(row["command"])
        impl = self.impls.get(command.action)
        if impl is None:
            await self._finish(
                row,
                FAILED,
                {"outcome": "error", "detail": f"no executor for {command.action!r}"},
                "failed",
            )
            return None
        try:
            params = validate_params(command.action, command.params).model_dump(exclude_none=True)
        except ValueError as exc:
            await self._finish(row, FAILED, {"outcome": "error", "detail": str(exc)}, "failed")
            return None
        async with self.pool.acquire() as conn:
            journal = await store.audit_events(conn, row["command_id"])
            executed_last_hour = await store.executed_since(
                conn, command.target.account_id, now - timedelta(hours=1)
            )
        intents = [a for a in journal if a["event"] == "intent"]
        done_steps = frozenset(
            (a["result"] or {}).get("step") for a in journal if a["event"] == "step"
        )
        resumed = bool(intents)
        current = await asyncio.to_thread(impl.observe, command.target, params)
        # the stored command's playbook as it is now decides mode, approval and guardrails
        policy = self.policy_for(row["playbook"])
        requested = command.mode == CommandMode.EXECUTE
        verdict = check(
            resource_id=command.target.resource_id,
            execute=requested,
            expires_at=expires_at,
            now=now,
            policy=policy,
            tags=current.get("tags", {}),
            executed_last_hour=executed_last_hour,
        )
        if verdict.outcome == EXPIRE:
            await self._finish(
                row,
                EXPIRED,
                {"outcome": "expired", "detail": verdict.detail},
                "expired",
                before=current,
            )
            return None
        if verdict.outcome == BLOCK:
            await self._finish(
                row,
                REJECTED,
                {
                    "outcome": "blocked",
                    "rule": verdict.rule,
                    "detail": verdict.detail,
                    "mode": command.mode.value,
                },
                "blocked",
                before=current,
            )
            return None
        if verdict.outcome == DEFER:
            last = journal[-1] if journal else None
            if not (
                last
                and last["event"] == "deferred"
                and (last["result"] or {}).get("rule") == verdict.rule
            ):
                await self._audit(
                    row,
                    "deferred",
                    reason=verdict.detail,
                    state_before=current,
                    result={"rule": verdict.rule},
                )
            return now + DEFER_BACKOFF
        execute = requested and policy.mode == "execute"
        if execute and policy.approval_required and row["decided_by"] is None and not resumed:
            # the playbook asks for a person now, whatever the command said when it was issued
            async with store.transaction(self.pool) as conn:
                await store.require_approval(
                    conn, row["command_id"], actor=ACTOR, reason="the playbook requires an approval"
                )
            await self._request_approval(row)
            return None
        if not execute:
            preview = impl.preview(current, params)
            detail = f"would run {command.action} on {command.target.resource_id}"
            if requested:
                detail += f" (playbook {row['playbook']!r} is {policy.mode} now)"
            await self._finish(
                row,
                DRY_RUN,
                {"outcome": "dry-run", "would": preview, "detail": detail},
                "dry-run",
                before=current,
                after=preview,
            )
            return None
        if not resumed:
            if not current.get("exists", True):
                await self._finish(
                    row,
                    FAILED,
                    {"outcome": "error", "detail": f"{command.target.resource_id} not found"},
                    "failed",
                    before=current,
                )
                return None
            if impl.satisfied(current, params):
                await self._finish(
                    row,
                    EXECUTED,
                    {
                        "outcome": "already-satisfied",
                        "state_after": current,
                        "detail": "target already in the desired state",
                    },
                    "executed",
                    before=current,
                    after=current,
                    executed_at=now,
                )
                return None
            # written (and committed) before the first change: a resumed run takes the state
            # before from here, never from what an interrupted run left behind
            await self._audit(
                row,
                "intent",
                reason=command.reason.text,
                state_before=current,
                result={"undo": _planned_undo(command.action, current, params)},
            )
            before = current
        else:
            before = intents[0]["state_before"] or current
            await self._audit(
                row,
                "resumed",
                state_before=current,
                result={"done_steps": sorted(s for s in done_steps if s)},
            )
        try:
            after, undo = await asyncio.to_thread(
                impl.apply, command, params, before, step=self._journal(row), done=done_steps
            )
        except Exception as exc:  # noqa: BLE001 - an action's implementation may raise anything: recorded on the command
            await self._finish(
                row,
                FAILED,
                {"outcome": "error", "detail": error_text(exc)},
                "failed",
                before=before,
            )
            return None
        detail = f"{command.action} on {command.target.resource_id}"
        if resumed:
            detail += " (resumed after an interruption; finished steps not repeated)"
        await self._finish(
            row,
            EXECUTED,
            {"outcome": "done", "detail": detail, "state_after": after},
            "executed",
            before=before,
            after=after,
            executed_at=self.clock(),
            undo=undo,
        )
        return None

    def _journal(self, row) -> Callable[..., None]:
        """The step journal an implementation calls (from its worker thread) after each change
        it made, so a resumed run knows which steps are done; `step_hook` lets tests kill the
        executor right there."""
        loop = asyncio.get_running_loop()

        def step(name: str, **data: Any) -> None:
            future = asyncio.run_coroutine_threadsafe(
                self._audit(row, "step", result={"step": name, **data}), loop
            )
            future.result(timeout=60)
            if self.step_hook is not None:
                self.step_hook(row["command_id"], name)

        return step

    async def _request_approval(self, row) -> None:
        """Tell people once that a command waits for them (log, or the approval webhook)."""
        async with self.pool.acquire() as conn:
            if any(
                a["event"] == "approval-requested"
                for a in await store.audit_events(conn, row["command_id"])
            ):
                return
        command = RemediationCommandV1.model_validate(row["command"])
        text = (
            f"FinFocus needs an approval: {command.action} on {command.target.resource_id} "
            f"({command.reason.text}); run `finfocus remediation approve {command.command_id}` "
            f"or `reject` before {command.expires_at.isoformat() if command.expires_at else 'it expires'}"
        )
        outcome: dict = {"channel": self.approval_channel}
        try:
            notify = self.impls["notify"]
            params = {
                "channel": self.approval_channel,
                "message": text,
                "webhook_secret": "remediation-approval-webhook-url",
            }
            await asyncio.to_thread(notify.apply, command, params, {}, step=None, done=frozenset())
            outcome["delivered"] = True
        except Exception as exc:  # noqa: BLE001 - the request stays visible in `finfocus remediation list`
            outcome.update(delivered=False, detail=error_text(exc)[:500])
        async with store.transaction(self.pool) as conn:
            # The command may have been cancelled (anomaly resolved) or decided meanwhile; the
            # row lock orders this record after any such change, never before it.
            if await store.status_for_update(conn, row["command_id"]) != "pending-approval":
                return
            await self._append_audit(conn, row, "approval-requested", reason=text, result=outcome)

    async def _undo(self, row) -> None:
        impl = self.impls[row["action"]]
        target = RemediationTargetV1.model_validate(row["command"]["target"])
        try:
            result = await asyncio.to_thread(impl.undo, target, row["undo"], row["command_id"])
        except Exception as exc:  # noqa: BLE001 - an action's implementation may raise anything: recorded on the command
            await self._audit(row, "undo-failed", reason=error_text(exc))
            async with store.transaction(self.pool) as conn:
                await store.mark_undone(
                    conn, row["command_id"], {"outcome": "error", "detail": error_text(exc)}
                )
            return
        async with store.transaction(self.pool) as conn:
            await store.mark_undone(
                conn, row["command_id"], {"outcome": "undone", "state_after": result}
            )
            await self._append_audit(
                conn,
                row,
                "undone",
                state_before=row["result"],
                state_after=result,
                result={"undo": row["undo"]},
            )


def _planned_undo(action: str, before: dict, params: dict) -> dict | None:
    """What undoing needs, known before acting (kept in the intent row, beside the state before)."""
    if action == "stop-instance":
        return {"start": before.get("state") == "running"}
    if action == "resize-instance":
        return {
            "instance_type": before.get("instance_type"),
            "restart": before.get("state") in {"running", "pending"},
        }
    if action == "scale-down":
        return {
            "desired_capacity": before.get("desired_capacity"),
            "min_size": before.get("min_size"),
        }
    if action == "tag-resource":
        return {"previous": {k: (before.get("tags") or {}).get(k) for k in params.get("tags", {})}}
    if action == "delete-volume" and params.get("snapshot", True):
        return {"snapshot": "taken before deleting, tagged with the command id"}
    return None


def error_text(exc: BaseException) -> str:
    """An exception as stored in results and audit rows: URLs and tokens redacted (a webhook
    URL is a credential), bounded in size."""
    return redact(f"{type(exc).__name__}: {exc}")[:2000]


async def run_sweeps(executor: Executor, interval: float, stop: asyncio.Event) -> None:
    """Background loop of the service: approvals, expiries and undo requests are picked up here."""
    while not stop.is_set():
        try:
            await executor.sweep()
        except Exception:
            logger.exception("executor sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
