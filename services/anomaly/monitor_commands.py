"""Monitor changes as events: MonitorCommand v1 from `monitor-commands`, signed by the api (for
an admin) or the command line, applied inside the consume pipeline's transaction.

Each command is checked against the dimension and detector registries (monitors.decide), then
stored and audited in `anomaly.monitor_audit` with its outcome (`applied`, `unchanged`, or
`refused` with the reason) and the actor as `<issuer>:<actor>`; a command id seen before
changes nothing (redelivery). An unsigned or forged command is dead-lettered with the reason.
After the commit the registry reloads, so the next batch is evaluated with the new monitors.
"""

from __future__ import annotations

import logging

from finfocus.broker import Envelope
from finfocus.signing import service_keys, verify
from finfocus.telemetry import log_fields
from schemas.monitors import MONITOR_COMMANDS, MonitorCommandV1
from services.anomaly import store
from services.anomaly.monitors import MonitorRegistry, decide

logger = logging.getLogger(__name__)

GROUP_ID = "finfocus-anomaly-monitor-commands"
#: who may change monitors: the api (for its admins) and the command line
MONITOR_ISSUERS = ("api", "cli")


async def apply_monitor_commands(conn, items: list[tuple[MonitorCommandV1, str]]) -> None:
    for command, issuer in items:
        if await store.monitor_audited(conn, command.command_id):
            continue  # redelivered: already decided
        actor = f"{issuer}:{command.actor}"
        current = await store.monitor_specs(conn)
        outcome, detail, spec = decide(current, command)
        if outcome == "applied" and spec is not None:
            await store.set_monitor(conn, command.name, spec, actor)
        elif outcome == "applied":
            await store.remove_monitor(conn, command.name)
        await store.audit_monitor(
            conn,
            command.command_id,
            command.name,
            command.action.value,
            spec,
            outcome,
            detail,
            actor,
            command.issued_at,
        )
        logger.info(
            "monitor command %s",
            outcome,
            extra=log_fields(
                command_id=command.command_id, monitor=command.name, actor=actor, detail=detail
            ),
        )


def register_monitor_commands(runtime, registry: MonitorRegistry) -> None:
    """Subscribe `monitor-commands`; the registry reloads after each committed batch."""
    keys = service_keys(runtime.settings.home, MONITOR_ISSUERS)

    def decode(env: Envelope) -> tuple[MonitorCommandV1, str]:
        issuer = verify(keys, env.headers, env.topic, env.value, MONITOR_ISSUERS)
        return MonitorCommandV1.model_validate_json(env.value), issuer

    async def reload() -> None:
        await registry.refresh(runtime.pool)

    runtime.consume(
        MONITOR_COMMANDS,
        group=GROUP_ID,
        label="MonitorCommand v1",
        decode=decode,
        work=apply_monitor_commands,
        relay=reload,
        title="monitor-commands:MonitorCommand",
        description="MonitorCommand v1 signed by the api or the CLI: add, replace or remove a monitor "
        "(audited in v_monitor_audit)",
    )
