"""Playbook switches as events, on the real broker and database: the remediation service
lists its loaded playbooks in v_playbooks, applies signed PlaybookCommand v1 through its
consume pipeline (the planner then reads the playbook as switched), audits each command with
the actor and outcome, refuses unknown playbooks and ignores unsigned or forged commands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from finfocus.broker import RecordPublisher
from finfocus.service import ServiceRuntime
from finfocus.signing import service_keys, sign
from schemas.playbooks import PLAYBOOK_COMMANDS, PlaybookCommandV1
from schemas.topics import schema_headers
from services.remediation.app import MIGRATIONS_DIR
from services.remediation.config import RemediationSettings
from services.remediation.handlers import current_playbooks
from services.remediation.playbook_commands import register_playbook_commands, switches_for
from services.remediation.playbooks import install_defaults

pytestmark = pytest.mark.integration


def command(command_id: str, action: str, name: str) -> PlaybookCommandV1:
    return PlaybookCommandV1(
        command_id=command_id,
        action=action,
        name=name,
        reason="change freeze",
        actor="root",
        issued_at=datetime.now(UTC),
    )


async def send(settings, cmd: PlaybookCommandV1, issuer: str | None = "cli") -> None:
    value = cmd.model_dump_json().encode()
    headers = [(k, v.encode()) for k, v in schema_headers("PlaybookCommand").items()]
    if issuer is not None:
        headers.append(
            sign(service_keys(settings.home, [issuer]), issuer, PLAYBOOK_COMMANDS, value)
        )
    publisher = RecordPublisher(settings.kafka)
    await publisher.start()
    try:
        await publisher.publish(PLAYBOOK_COMMANDS, [(cmd.name.encode(), value, headers)])
    finally:
        await publisher.stop()


async def audit_of(conn, command_id: str):
    for _ in range(150):
        row = await conn.fetchrow(
            "SELECT * FROM remediation.v_playbook_audit WHERE command_id = $1", command_id
        )
        if row is not None:
            return row
        await asyncio.sleep(0.2)
    pytest.fail(f"command {command_id} never audited")


async def test_playbook_switches_are_applied_audited_and_read_by_the_planner(settings):
    rsettings = RemediationSettings.extending(settings)
    install_defaults(rsettings.playbooks_dir)
    runtime = ServiceRuntime("remediation", rsettings)
    switches = switches_for(rsettings)
    register_playbook_commands(runtime, switches)
    app = runtime.app(MIGRATIONS_DIR)
    await app.start()
    conn = await asyncpg.connect(settings.database)
    try:
        await switches.refresh(runtime.pool)
        listed = {r["name"]: r for r in await conn.fetch("SELECT * FROM remediation.v_playbooks")}
        assert "stop-spiking-instances" in listed
        before = listed["stop-spiking-instances"]["enabled"]
        action = "disable" if before else "enable"

        await send(settings, command("p-1", action, "stop-spiking-instances"))
        row = await audit_of(conn, "p-1")
        assert (row["outcome"], row["actor"], row["reason"]) == (
            "applied",
            "cli:root",
            "change freeze",
        )
        shown = await conn.fetchrow(
            "SELECT enabled, switched, updated_by FROM remediation.v_playbooks "
            "WHERE name = 'stop-spiking-instances'"
        )
        assert tuple(shown) == (not before, True, "cli:root")
        planner = {p.name: p for p in current_playbooks(rsettings)}
        assert planner["stop-spiking-instances"].enabled is (not before)

        await send(settings, command("p-2", action, "stop-spiking-instances"))
        assert (await audit_of(conn, "p-2"))["outcome"] == "unchanged"
        await send(settings, command("p-3", "enable", "no-such-playbook"))
        refused = await audit_of(conn, "p-3")
        assert refused["outcome"] == "refused" and "no playbook" in refused["detail"]
        await send(settings, command("p-forged", "enable", "stop-spiking-instances"), "pricing")
        await send(settings, command("p-unsigned", "enable", "stop-spiking-instances"), None)
        await send(settings, command("p-1", "enable", "stop-spiking-instances"))  # a repeat id
        await send(settings, command("p-4", "enable", "notify-anomalies"))
        await audit_of(conn, "p-4")
        assert not await conn.fetchval(
            "SELECT count(*) FROM remediation.v_playbook_audit "
            "WHERE command_id IN ('p-forged', 'p-unsigned')"
        )
        assert await conn.fetchval(
            "SELECT enabled FROM remediation.v_playbooks WHERE name = 'stop-spiking-instances'"
        ) is (not before)
    finally:
        await conn.close()
        await app.stop()


async def test_the_cli_switches_a_playbook_and_lists_it_switched(settings):
    import getpass
    import json

    from typer.testing import CliRunner

    from finfocus.cli import app as cli

    rsettings = RemediationSettings.extending(settings)
    install_defaults(rsettings.playbooks_dir)
    runtime = ServiceRuntime("remediation", rsettings)
    switches = switches_for(rsettings)
    register_playbook_commands(runtime, switches)
    app = runtime.app(MIGRATIONS_DIR)
    await app.start()
    env = {
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_DATABASE_URL": settings.database,
        "FINFOCUS_KAFKA_BOOTSTRAP": settings.kafka,
    }

    def invoke(*args: str):
        return asyncio.to_thread(CliRunner().invoke, cli, ["playbooks", *args], env=env)

    try:
        await switches.refresh(runtime.pool)
        before = {
            p["name"]: p
            for p in json.loads((await invoke("list", "-o", "json")).output)["playbooks"]
        }
        target = before["notify-anomalies"]
        action = "disable" if target["enabled"] else "enable"
        done = await invoke(action, "notify-anomalies", "--reason", "quiet week")
        assert done.exit_code == 0 and f"notify-anomalies {action}d" in done.output, done.output
        after = {
            p["name"]: p
            for p in json.loads((await invoke("list", "-o", "json")).output)["playbooks"]
        }
        assert after["notify-anomalies"]["enabled"] is (not target["enabled"])
        assert after["notify-anomalies"]["switched"] is True
        refused = await invoke("enable", "no-such-playbook")
        assert refused.exit_code == 1 and "no playbook no-such-playbook" in refused.output
        conn = await asyncpg.connect(settings.database)
        try:
            row = await conn.fetchrow(
                "SELECT actor, reason FROM remediation.v_playbook_audit WHERE outcome = 'applied'"
            )
        finally:
            await conn.close()
        assert tuple(row) == (f"cli:{getpass.getuser()}", "quiet week")
    finally:
        await app.stop()
