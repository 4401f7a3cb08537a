"""Monitor changes as events, on the real broker and database: the anomaly service imports its
monitors file once, then applies signed MonitorCommand v1 through its consume pipeline,
audits each with the actor and its outcome, refuses what its registries reject, ignores
forged commands, and the registry the detectors read loads the stored monitors."""

from __future__ import annotations

import asyncio
import getpass
import json
from datetime import UTC, datetime

import asyncpg
import pytest

from finfocus.broker import RecordPublisher
from finfocus.db import create_pool
from finfocus.signing import service_keys, sign
from schemas.monitors import MONITOR_COMMANDS, MonitorCommandV1
from schemas.topics import schema_headers
from services.anomaly.app import build_app
from services.anomaly.monitors import MonitorRegistry

pytestmark = pytest.mark.integration


def command(
    command_id: str, action: str, name: str, monitor: dict | None = None
) -> MonitorCommandV1:
    return MonitorCommandV1(
        command_id=command_id,
        action=action,
        name=name,
        monitor=monitor,
        actor="root",
        issued_at=datetime.now(UTC),
    )


async def send(settings, cmd: MonitorCommandV1, issuer: str | None = "cli") -> None:
    value = cmd.model_dump_json().encode()
    headers = [(k, v.encode()) for k, v in schema_headers("MonitorCommand").items()]
    if issuer is not None:
        headers.append(sign(service_keys(settings.home, [issuer]), issuer, MONITOR_COMMANDS, value))
    publisher = RecordPublisher(settings.kafka)
    await publisher.start()
    try:
        await publisher.publish(MONITOR_COMMANDS, [(cmd.name.encode(), value, headers)])
    finally:
        await publisher.stop()


async def audit_of(conn, command_id: str, timeout: float = 30.0):
    for _ in range(int(timeout / 0.2)):
        row = await conn.fetchrow(
            "SELECT * FROM anomaly.v_monitor_audit WHERE command_id = $1", command_id
        )
        if row is not None:
            return row
        await asyncio.sleep(0.2)
    pytest.fail(f"command {command_id} never audited")


async def test_monitor_commands_are_applied_audited_and_used(settings):
    path = settings.home / "anomaly" / "monitors.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("monitors:\n  - name: regions\n    dimensions: [RegionId]\n    top: 3\n")
    app = build_app(settings)
    await app.start()
    conn = await asyncpg.connect(settings.database)
    try:
        names = [r["name"] for r in await conn.fetch("SELECT name FROM anomaly.v_monitors")]
        assert names == ["regions"]  # imported from the file once
        imported = await conn.fetchrow("SELECT actor, outcome FROM anomaly.v_monitor_audit")
        assert tuple(imported) == ("file", "applied")

        await send(
            settings,
            command(
                "m-1",
                "set",
                "data-team",
                {"filters": {"tag:team": "data"}, "params": {"threshold": "4.5"}},
            ),
        )
        row = await audit_of(conn, "m-1")
        assert (row["outcome"], row["actor"], row["name"]) == ("applied", "cli:root", "data-team")
        stored = await conn.fetchrow(
            "SELECT spec, version, updated_by FROM anomaly.v_monitors WHERE name = 'data-team'"
        )
        assert stored["updated_by"] == "cli:root" and stored["version"] == 1
        assert "tag:team" in str(stored["spec"])

        # the registries refuse what they do not know: audited with the reason, nothing stored
        await send(
            settings,
            command("m-2", "set", "bad", {"dimensions": ["RegionId"], "detector": "no-such"}),
        )
        refused = await audit_of(conn, "m-2")
        assert refused["outcome"] == "refused" and "no-such" in refused["detail"]
        await send(settings, command("m-3", "set", "bad2", {"dimensions": ["Nope"]}))
        assert "unknown dimension" in (await audit_of(conn, "m-3"))["detail"]

        # a forged command (signed by an issuer the service does not trust) changes nothing
        await send(settings, command("m-forged", "remove", "regions"), issuer="pricing")
        await send(settings, command("m-unsigned", "remove", "regions"), issuer=None)
        # removal, then removing the last one is refused
        await send(settings, command("m-4", "remove", "regions"))
        assert (await audit_of(conn, "m-4"))["outcome"] == "applied"
        await send(settings, command("m-5", "remove", "data-team"))
        last = await audit_of(conn, "m-5")
        assert last["outcome"] == "refused" and "last monitor" in last["detail"]
        assert not await conn.fetchval(
            "SELECT count(*) FROM anomaly.v_monitor_audit WHERE command_id IN ('m-forged', 'm-unsigned')"
        )
        names = [
            r["name"] for r in await conn.fetch("SELECT name FROM anomaly.v_monitors ORDER BY name")
        ]
        assert names == ["data-team"]
        # the file is not read again
        path.write_text("monitors:\n  - name: other\n    dimensions: [ServiceName]\n")
        # the same command again (a redelivery) is not applied twice
        await send(settings, command("m-1", "set", "data-team", {"dimensions": ["ServiceName"]}))
        await send(settings, command("m-6", "set", "services", {"dimensions": ["ServiceName"]}))
        await audit_of(conn, "m-6")
        assert (
            await conn.fetchval("SELECT version FROM anomaly.v_monitors WHERE name = 'data-team'")
            == 1
        )
    finally:
        await conn.close()
        await app.stop()
    # a restart loads the stored monitors, not the file
    app = build_app(settings)
    await app.start()
    try:
        conn = await asyncpg.connect(settings.database)
        try:
            names = [
                r["name"]
                for r in await conn.fetch("SELECT name FROM anomaly.v_monitors ORDER BY name")
            ]
        finally:
            await conn.close()
        assert names == ["data-team", "services"]
    finally:
        await app.stop()
    pool = await create_pool(settings.database)
    try:
        monitors = await MonitorRegistry(path).refresh(pool)
    finally:
        await pool.close()
    assert {m.name: m.filters for m in monitors} == {
        "data-team": (("tag:team", "data"),),
        "services": (),
    }
    assert dict(monitors[0].params) == {"threshold": "4.5"}


async def test_the_cli_sends_monitor_commands_and_lists_what_the_service_stored(settings):
    from typer.testing import CliRunner

    from finfocus.cli import app as cli

    env = {
        "FINFOCUS_HOME": str(settings.home),
        "FINFOCUS_DATABASE_URL": settings.database,
        "FINFOCUS_KAFKA_BOOTSTRAP": settings.kafka,
    }

    def invoke(*args: str):
        return asyncio.to_thread(CliRunner().invoke, cli, ["anomalies", "monitors", *args], env=env)

    app = build_app(settings)
    await app.start()
    try:
        added = await invoke(
            "add", "regions", "-d", "RegionId", "--top", "3", "-p", "threshold=6.5"
        )
        assert added.exit_code == 0 and "monitor regions saved" in added.output, added.output
        exists = await invoke("add", "regions", "-d", "RegionId")
        assert exists.exit_code == 1 and "--replace" in exists.output
        listed = await invoke("list", "-o", "json")
        monitors = {m["name"]: m for m in json.loads(listed.output)["monitors"]}
        assert set(monitors) == {"services", "regions"}  # the default, imported, and the new one
        assert monitors["regions"]["top"] == 3 and monitors["regions"]["params"] == {
            "threshold": "6.5"
        }
        removed = await invoke("remove", "services")
        assert removed.exit_code == 0, removed.output
        refused = await invoke("remove", "regions")
        assert refused.exit_code == 1 and "last monitor" in refused.output
        conn = await asyncpg.connect(settings.database)
        try:
            actors = {
                r["actor"] for r in await conn.fetch("SELECT actor FROM anomaly.v_monitor_audit")
            }
        finally:
            await conn.close()
        assert actors == {"file", f"cli:{getpass.getuser()}"}
    finally:
        await app.stop()
