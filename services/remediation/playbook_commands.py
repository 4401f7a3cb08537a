"""Playbook switches as events: PlaybookCommand v1 from `playbook-commands`, signed by the api
(for an admin) or the command line, applied inside the consume pipeline's transaction.

A switch overrides the playbook file's `enabled` (the planner reads the playbooks through
`PlaybookSwitches.apply`); each command is audited in `remediation.playbook_audit` with its
outcome (`applied`, `unchanged`, or `refused` for a playbook the service has not loaded) and
the actor as `<issuer>:<actor>`; a command id seen before changes nothing (redelivery), an
unsigned or forged command is dead-lettered with the reason. The service also keeps
`remediation.playbook_catalog` (what `v_playbooks` lists) current with its playbook files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import asyncpg

from finfocus.broker import Envelope
from finfocus.periodic import Periodic
from finfocus.signing import service_keys, verify
from finfocus.telemetry import log_fields
from schemas.playbooks import PLAYBOOK_COMMANDS, PlaybookAction, PlaybookCommandV1
from services.remediation import store
from services.remediation.playbooks import Playbook

logger = logging.getLogger(__name__)

GROUP_ID = "finfocus-remediation-playbook-commands"
#: who may switch playbooks: the api (for its admins) and the command line
PLAYBOOK_ISSUERS = ("api", "cli")


def decide(
    loaded: Sequence[Playbook], switches: dict[str, bool], command: PlaybookCommandV1
) -> tuple[str, str | None]:
    """(outcome, detail) of a switch against the loaded playbooks and the stored switches. Pure."""
    playbook = next((p for p in loaded if p.name == command.name), None)
    if playbook is None:
        return "refused", f"no playbook {command.name} is loaded (see finfocus playbooks list)"
    wanted = command.action == PlaybookAction.ENABLE
    if switches.get(command.name, playbook.enabled) == wanted:
        return "unchanged", f"the playbook is already {command.action.value}d"
    return "applied", None


def catalog_row(p: Playbook) -> tuple[str, str, bool, str, list[str]]:
    if p.trigger.recommendation is not None:
        trigger = "recommendation:" + ",".join(p.trigger.recommendation.types)
    else:
        trigger = "anomaly"
    return p.name, p.mode, p.enabled, trigger, [a.action for a in p.actions]


class PlaybookSwitches:
    """The stored switches, as the planner reads them (synchronously): loaded at start, after
    every applied command and every `poll_s` (a switch another replica applied)."""

    def __init__(self, playbooks: Callable[[], list[Playbook]], poll_s: float = 10.0) -> None:
        self.playbooks = playbooks  # the valid playbooks of the directory, before switches
        self.poll_s = poll_s
        self._switches: dict[str, bool] = {}
        self._catalog: list | None = None
        self._poller: Periodic | None = None

    def apply(self, playbooks: list[Playbook]) -> list[Playbook]:
        """The playbooks with each switched one's `enabled` overridden."""
        return [
            p.model_copy(update={"enabled": self._switches[p.name]})
            if p.name in self._switches and self._switches[p.name] != p.enabled
            else p
            for p in playbooks
        ]

    async def refresh(self, pool: asyncpg.Pool) -> None:
        catalog = [catalog_row(p) for p in self.playbooks()]
        async with pool.acquire() as conn:
            if catalog != self._catalog:
                await store.sync_playbook_catalog(conn, catalog)
                self._catalog = catalog
            self._switches = await store.playbook_switches(conn)

    def start(self, pool_of: Callable[[], asyncpg.Pool]) -> None:
        if self._poller is None:
            self._poller = Periodic(
                "remediation-playbook-switches",
                self.poll_s,
                lambda: self.refresh(pool_of()),
                "playbook switches",
            )
        self._poller.start()

    async def stop(self) -> None:
        if self._poller is not None:
            await self._poller.stop()


def register_playbook_commands(runtime, switches: PlaybookSwitches) -> None:
    """Subscribe `playbook-commands`; the switches reload after each committed batch."""
    keys = service_keys(runtime.settings.home, PLAYBOOK_ISSUERS)

    def decode(env: Envelope) -> tuple[PlaybookCommandV1, str]:
        issuer = verify(keys, env.headers, env.topic, env.value, PLAYBOOK_ISSUERS)
        return PlaybookCommandV1.model_validate_json(env.value), issuer

    async def work(conn, items: list[tuple[PlaybookCommandV1, str]]) -> None:
        loaded = switches.playbooks()
        for command, issuer in items:
            if await store.playbook_audited(conn, command.command_id):
                continue  # redelivered: already decided
            actor = f"{issuer}:{command.actor}"
            outcome, detail = decide(loaded, await store.playbook_switches(conn), command)
            if outcome == "applied":
                await store.switch_playbook(
                    conn,
                    command.name,
                    command.action == PlaybookAction.ENABLE,
                    command.reason,
                    actor,
                )
            await store.audit_playbook(
                conn,
                command.command_id,
                command.name,
                command.action.value,
                outcome,
                detail,
                command.reason,
                actor,
                command.issued_at,
            )
            logger.info(
                "playbook command %s",
                outcome,
                extra=log_fields(command_id=command.command_id, playbook=command.name, actor=actor),
            )

    async def reload() -> None:
        await switches.refresh(runtime.pool)

    runtime.consume(
        PLAYBOOK_COMMANDS,
        group=GROUP_ID,
        label="PlaybookCommand v1",
        decode=decode,
        work=work,
        relay=reload,
        title="playbook-commands:PlaybookCommand",
        description="PlaybookCommand v1 signed by the api or the CLI: enable or disable a playbook "
        "(audited in v_playbook_audit)",
    )


_SWITCHES: dict[str, PlaybookSwitches] = {}


def switches_for(settings) -> PlaybookSwitches:
    """The switches of the remediation service on `settings`' database (one per process and
    database: the planner, the executor's policies and the consumer share it)."""
    from services.remediation.playbooks import load_playbooks

    key = settings.database
    if key not in _SWITCHES:
        _SWITCHES[key] = PlaybookSwitches(lambda: load_playbooks(settings.playbooks_dir)[0])
    return _SWITCHES[key]
