"""Wiring of the remediation service: planner, cost lines and (by default) the guarded executor."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from faststream import FastStream
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from finfocus.broker import Envelope
from finfocus.consume import Done, TrackAfter
from finfocus.leader import Leader
from finfocus.secrets import secrets_from_environment
from finfocus.service import ServiceRuntime
from finfocus.telemetry import start_record_span
from schemas.remediation import RecommendationV1, RemediationCommandV1, RemediationResultV1
from schemas.topics import Topics, schema_headers
from services.remediation import store
from services.remediation.analyzer import Analyzer
from services.remediation.cloud import implementations
from services.remediation.config import RemediationSettings
from services.remediation.decisions import register_decisions
from services.remediation.executor import Executor, run_sweeps
from services.remediation.guardrails import Policy, policy_for
from services.remediation.handlers import (
    current_playbooks,
    publish_commands,
    register_handlers,
    register_metrics_handler,
)
from services.remediation.playbook_commands import register_playbook_commands, switches_for
from services.remediation.playbooks import install_defaults
from services.remediation.trust import keys_for

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
logger = logging.getLogger(__name__)


def policy_lookup(settings: RemediationSettings):
    def lookup(name: str | None) -> Policy:
        playbook = next((p for p in current_playbooks(settings) if p.name == name), None)
        return policy_for(
            playbook,
            global_protect_tag=settings.remediation_protect_tag,
            default_rate_limit=settings.remediation_rate_limit_per_hour,
        )

    return lookup


def register_executor(runtime: ServiceRuntime, settings: RemediationSettings, holder: dict) -> None:
    """Subscribe the executor. Its effects are the executor's own transactions (idempotent per
    command id: no action runs twice), so no transaction is held open during cloud calls; the
    tracking record follows in its own, before the offsets are committed."""

    async def execute(_conn, envs: list[Envelope]) -> Done:
        executor: Executor = holder["get"]()
        refused = {}
        for i, env in enumerate(envs):
            span = start_record_span(runtime.tracer, "remediation.execute", env.headers)
            with trace.use_span(span, end_on_exit=True):
                # only a command the planner stored and signed is run, as stored
                reason = await executor.receive(env.value, env.headers, env.topic)
                if reason is not None:
                    refused[i] = reason
        return Done(refused=refused)

    runtime.consume(
        Topics.REMEDIATION_COMMANDS,
        group="finfocus-remediation-executor",
        label="RemediationCommand v1",
        decode=lambda env: env,
        work=execute,
        uow=TrackAfter(runtime.uow),
        description="RemediationCommand v1 signed by the planner: the stored command is run, guarded",
    )


async def republish_after_broker_loss(runtime: ServiceRuntime, epoch: str) -> None:
    """Under a broker epoch not recorded yet: publish the stored commands not run yet again,
    signed (the executor runs a command id once, whatever the redelivery), then record it."""
    async with runtime.pool.acquire() as conn:
        if await store.last_epoch(conn) == epoch:
            return
        commands = await store.commands_not_run(conn)
    if commands:
        span = runtime.tracer.start_span("remediation.broker-recovery")
        with trace.use_span(span, end_on_exit=True):
            await publish_commands(runtime, commands, span)
    async with runtime.pool.acquire() as conn:
        await store.record_epoch(conn, epoch)
    logger.info("broker recovery", extra={"fields": {"epoch": epoch, "commands": len(commands)}})


def build_app(
    settings: RemediationSettings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastStream:
    settings = RemediationSettings.extending(settings)
    runtime = ServiceRuntime(
        "remediation",
        settings,
        tracer_provider,
        description="Anomalies and recommendations to guarded remediation commands; executor; savings",
    )
    runtime.publishes(
        Topics.REMEDIATION_COMMANDS,
        RemediationCommandV1,
        "Commands planned from anomalies and recommendations",
    )
    runtime.publishes(
        Topics.REMEDIATION_RESULTS, RemediationResultV1, "What the executor did with each command"
    )
    runtime.publishes(Topics.RECOMMENDATIONS, RecommendationV1, "Savings opportunities, once each")

    async def publish_planned(commands) -> None:
        span = runtime.tracer.start_span("remediation.plan-recommendations")
        with trace.use_span(span, end_on_exit=True):
            await publish_commands(runtime, commands, span)

    # one instance analyses every resource (they are all in the shared tables); the others
    # forward what they stored to it
    leader = Leader("remediation", lambda: settings.database)
    analyzer = Analyzer(
        runtime, settings, lambda: current_playbooks(settings), publish_planned, leader=leader
    )
    leader.on_elected = leader.on_nudge = analyzer.due
    register_handlers(runtime, settings, on_costs=analyzer.touch)
    register_metrics_handler(runtime, settings, on_metrics=analyzer.touch)
    register_decisions(runtime, settings)
    switches = switches_for(settings)
    register_playbook_commands(runtime, switches)
    holder: dict = {}
    stop = asyncio.Event()

    async def publish_result(result: RemediationResultV1) -> None:
        headers = [(k, v.encode()) for k, v in schema_headers("RemediationResult").items()]
        await runtime.publisher.publish(
            Topics.REMEDIATION_RESULTS,
            [(result.command_id.encode(), result.model_dump_json().encode(), headers)],
        )
        if result.status == "executed":
            analyzer.touch()

    def get_executor() -> Executor:
        # built on first use: the pool exists once the app's start-up hooks ran
        if "executor" not in holder:
            holder["executor"] = Executor(
                runtime.pool,
                implementations(secrets_from_environment()),
                policy_lookup(settings),
                publish=publish_result,
                approval_channel=settings.remediation_approval_channel,
                keys=keys_for(settings.home),
            )
        return holder["executor"]

    holder["get"] = get_executor

    async def start_background() -> None:
        if settings.remediation_playbooks_dir is None:  # a directory of one's own stays as it is
            install_defaults(settings.playbooks_dir)
        await switches.refresh(runtime.pool)  # the catalog of loaded playbooks, the switches
        switches.start(lambda: runtime.pool)
        stop.clear()
        if settings.broker_epoch:
            await republish_after_broker_loss(runtime, settings.broker_epoch)
        await leader.start()
        holder["analysis"] = asyncio.create_task(analyzer.run(stop))
        if settings.remediation_executor:
            holder["sweeps"] = asyncio.create_task(
                run_sweeps(get_executor(), settings.remediation_poll_seconds, stop)
            )

    async def stop_background() -> None:
        stop.set()
        await switches.stop()
        for key in ("sweeps", "analysis"):
            task = holder.pop(key, None)
            if task is not None:
                await asyncio.wait([task], timeout=10)
        await leader.stop()
        holder.pop("executor", None)

    if settings.remediation_executor:
        register_executor(runtime, settings, holder)
    return runtime.app(MIGRATIONS_DIR, on_started=[start_background], on_stopping=[stop_background])
