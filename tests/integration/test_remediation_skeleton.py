"""Walking skeleton: an anomaly becomes a dry-run notify command, stored and published once."""

from __future__ import annotations

import asyncpg
import pytest

from finfocus.db import reader
from schemas.remediation import RemediationCommandV1
from schemas.topics import Topics
from services.remediation.app import build_app
from services.remediation.config import RemediationSettings
from tests.fixtures.remediation.support import (
    anomaly,
    eventually,
    publish,
    publish_signed,
    read_topic,
    running,
    values,
)

pytestmark = pytest.mark.integration


def remediation_settings(settings, **extra) -> RemediationSettings:
    return RemediationSettings(**settings.model_dump(), **extra)


async def test_anomaly_becomes_one_dry_run_notify_command_even_when_redelivered(settings):
    app = build_app(remediation_settings(settings, remediation_executor=False))
    event = anomaly("anom-skeleton")
    async with running(app):
        await publish_signed(settings, Topics.ANOMALIES, [event.model_dump_json().encode()])
        records = await read_topic(settings.kafka, Topics.REMEDIATION_COMMANDS, want=1)
        command = RemediationCommandV1.model_validate(values(records)[0])
        assert command.action == "notify"
        assert command.mode.value == "dry-run"
        assert command.reason.anomaly_id == "anom-skeleton"
        assert (settings.home / "playbooks" / "notify-anomalies.yaml").exists()  # packaged defaults

        async def in_view():
            async with reader(settings.database) as conn:
                return await conn.fetch("SELECT * FROM remediation.v_actions")

        rows = await eventually(in_view)
        assert [r["command_id"] for r in rows] == [command.command_id]

        # the same anomaly again (a redelivery, or the detector updating it): no second command
        await publish_signed(settings, Topics.ANOMALIES, [event.model_dump_json().encode()])
        again = await read_topic(settings.kafka, Topics.REMEDIATION_COMMANDS, want=2, timeout=4)
        assert len(again) == 1
        async with reader(settings.database) as conn:
            assert await conn.fetchval("SELECT count(*) FROM remediation.v_actions") == 1
    conn = await asyncpg.connect(settings.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM remediation.processed_anomalies") == 1
    finally:
        await conn.close()


async def test_command_continues_the_trace_of_its_anomaly_and_malformed_anomalies_are_dead_lettered(
    settings,
):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build_app(
        remediation_settings(settings, remediation_executor=False), tracer_provider=provider
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = [("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())]
    async with running(app):
        await publish_signed(settings, Topics.ANOMALIES, [b"not json"])
        await publish_signed(
            settings,
            Topics.ANOMALIES,
            [anomaly("traced").model_dump_json().encode()],
            headers=headers,
        )
        [record] = await read_topic(settings.kafka, Topics.REMEDIATION_COMMANDS, want=1)
        letters = await read_topic(settings.kafka, Topics.dlq(Topics.ANOMALIES), want=1)
        assert "invalid Anomaly v1" in values(letters)[0]["error"]
    sent = dict(record.headers)
    assert sent["traceparent"].decode().split("-")[1] == trace_id
    assert sent["finfocus-schema"] == b"RemediationCommand"
    plan = [s for s in exporter.get_finished_spans() if s.name == "remediation.plan"]
    assert plan and format(plan[0].context.trace_id, "032x") == trace_id


async def test_executor_dead_letters_malformed_and_unknown_commands_and_runs_none(settings):
    app = build_app(remediation_settings(settings, remediation_poll_seconds=0.3))
    outside = RemediationCommandV1.model_validate(
        {
            "command_id": "c-outside",
            "issued_at": "2026-11-22T00:00:00Z",
            "action": "notify",
            "target": {"provider": "AWS", "resource_id": "team-x"},
            "params": {"channel": "log"},
            "reason": {"text": "published by another system"},
            "mode": "dry-run",
        }
    )
    async with running(app):
        await publish(
            settings.kafka,
            Topics.REMEDIATION_COMMANDS,
            [b'{"action": "Stop Instance"}', outside.model_dump_json().encode()],
        )
        await publish_signed(
            settings,
            Topics.REMEDIATION_COMMANDS,
            [b'{"action": "Stop Instance"}'],
            issuer="remediation",
        )
        await publish_signed(
            settings,
            Topics.REMEDIATION_COMMANDS,
            [outside.model_dump_json().encode()],
            issuer="remediation",
        )
        letters = values(
            await read_topic(settings.kafka, Topics.dlq(Topics.REMEDIATION_COMMANDS), want=4)
        )
        errors = sorted(letter["error"] for letter in letters)
        assert sum("unsigned message" in e for e in errors) == 2
        assert any("invalid RemediationCommand v1" in e for e in errors)
        assert any("unknown command c-outside" in e for e in errors)
        async with reader(settings.database) as conn:
            assert await conn.fetchval("SELECT count(*) FROM remediation.v_actions") == 0


async def test_resolved_anomaly_cancels_its_commands_that_have_not_run(settings, tmp_path):
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "page.yaml").write_text(
        "name: page-on-call\ntrigger: {anomaly: {min_severity: high}}\n"
        "actions: [{action: notify, params: {channel: log}}]\nmode: execute\napproval: {required: true}\n"
    )
    app = build_app(
        remediation_settings(
            settings, remediation_playbooks_dir=playbooks, remediation_poll_seconds=0.3
        )
    )
    event = anomaly("anom-resolved")

    async def status():
        async with reader(settings.database) as conn:
            return await conn.fetchval(
                "SELECT status FROM remediation.v_actions WHERE anomaly_id = 'anom-resolved'"
            )

    async with running(app):
        await publish_signed(settings, Topics.ANOMALIES, [event.model_dump_json().encode()])
        assert await eventually(status) == "pending-approval"
        resolved = anomaly("anom-resolved", status="resolved")
        await publish_signed(settings, Topics.ANOMALIES, [resolved.model_dump_json().encode()])
        assert await eventually(lambda: _is(status, "rejected")) is True
        async with reader(settings.database) as conn:
            row = await conn.fetchrow(
                "SELECT result FROM remediation.v_actions WHERE anomaly_id = 'anom-resolved'"
            )
            events = [
                r["event"]
                for r in await conn.fetch(
                    "SELECT event FROM remediation.v_audit a JOIN remediation.v_actions c USING (command_id) "
                    "WHERE c.anomaly_id = 'anom-resolved' ORDER BY audit_id"
                )
            ]
        assert row["result"]["outcome"] == "cancelled"
        # the executor may or may not have announced it for approval before the cancellation
        assert events in (["issued", "approval-requested", "cancelled"], ["issued", "cancelled"])


async def _is(probe, expected):
    return (await probe()) == expected or None


async def test_oversized_anomalies_become_dead_letters_that_fit_and_the_rest_flows(settings):
    app = build_app(remediation_settings(settings, remediation_executor=False))
    huge = [b'{"anomaly_id": "' + bytes([65 + i]) * (400 * 1024) + b'"}' for i in range(2)]
    async with running(app):
        await publish_signed(
            settings, Topics.ANOMALIES, [*huge, anomaly("after-huge").model_dump_json().encode()]
        )
        letters = values(await read_topic(settings.kafka, Topics.dlq(Topics.ANOMALIES), want=2))
        [record] = await read_topic(settings.kafka, Topics.REMEDIATION_COMMANDS, want=1)
    assert len(letters) == 2
    for letter in letters:
        assert "original truncated to its first 65536 of" in letter["error"]
        assert len(letter["original"]) == 65536
    assert values([record])[0]["reason"]["anomaly_id"] == "after-huge"
